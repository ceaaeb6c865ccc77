"""Other rooms plug into `sie` here, so that `sie` names none of them.

A room declares one entry point in the group `sie.plugins` (pyproject.toml):

    [project.entry-points."sie.plugins"]
    pipelines = "pipelines.plugin:plugin"

whose object is a `Plugin`: sub-commands it adds to the `sie` command line, and options of `sie serve`
that mount its routes into the server (`--pipelines DIR`). Entry points are read from the installed
distributions' metadata, so a new or changed entry point needs a reinstall (`pip install --no-deps -e .`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

log = logging.getLogger(__name__)
GROUP = "sie.plugins"


@dataclass(frozen=True)
class ServeOption:
    """`sie serve --NAME VALUE`: when given, `mount(app, VALUE)` adds the room's routes to the app before it
    serves (a `SieError` from it is a one-line error and exit code 2)."""

    name: str
    help: str
    mount: Callable[[Any, str], object]


@dataclass(frozen=True)
class Plugin:
    name: str
    #: Adds the room's sub-commands to the `sie` typer app (heavy imports belong inside each command).
    commands: Callable[[Any], None] | None = None
    serve_options: tuple[ServeOption, ...] = ()


def load_plugins(points: Iterable[EntryPoint] | None = None) -> list[Plugin]:
    """The plugins behind `points` (default: every installed `sie.plugins` entry point), in name order.
    One that cannot be imported (an optional dependency missing) is skipped with a warning."""
    chosen = entry_points(group=GROUP) if points is None else points
    plugins = []
    for point in sorted(chosen, key=lambda p: p.name):
        try:
            plugin = point.load()
        except ImportError as e:
            log.warning("sie plugin %r (%s) cannot be imported, skipped: %s", point.name, point.value, e)
            continue
        if not isinstance(plugin, Plugin):
            raise TypeError(f"entry point {point.name} = {point.value!r} in {GROUP}: expected a sie.plugins.Plugin, "
                            f"got {type(plugin).__name__}")
        plugins.append(plugin)
    return plugins
