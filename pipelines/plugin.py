"""The pipelines room as a `sie` plugin (entry point `sie.plugins: pipelines` in pyproject.toml): its
sub-commands (`sie run | query | validate | plan | schema | mcp`) and `sie serve --pipelines DIR`, which
mounts its REST API into the server. Light to import: each command and the router load what they need."""

from __future__ import annotations

from typing import Any

from sie.plugins import Plugin, ServeOption


def _commands(app: Any) -> None:
    from pipelines.cli import register

    register(app)


def _mount(app: Any, folder: str) -> None:
    from pipelines.rest import mount

    mount(app, folder)


plugin = Plugin(name="pipelines", commands=_commands, serve_options=(
    ServeOption("pipelines", "Also serve the pipelines in this folder (/v1/pipelines, /v1/runs).", _mount),))
