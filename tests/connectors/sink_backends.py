"""Where the connector tests find a real database of each sink type.

Each sink's own test module (tests/connectors/test_<type>.py) declares the ways to run its database in a
top-level `BACKENDS = {name: Backend(...)}`. conftest.py runs the contract suite (`make_sink`: test_sink_contract.py,
test_generations_and_pointers.py) against every declared backend, and test_sink_config.py requires one per
registered sink type: a new sink's test backend lives with its test, and no table here names it.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Backend:
    sink: str
    """The sink type, a key of connectors/registry.py:SINKS."""
    options: Callable[[Path, pytest.FixtureRequest], dict[str, Any]]
    """The config beyond `type` and `collection`, given a fresh temp folder and the test's request (for
    fixtures such as `chroma_server`); it calls pytest.skip where the database is not reachable here."""
    outlives_process: bool = False
    """Its collections live in a server, not in the temp folder: the factory drops them at teardown."""


def _declares(path: Path) -> bool:
    text = path.read_text()
    if "BACKENDS" not in text:
        return False
    return any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "BACKENDS" for t in node.targets)
               for node in ast.parse(text).body)


def declared_backends() -> dict[str, Backend]:
    """backend name → Backend, from every test module here with a top-level `BACKENDS` (found from its syntax
    tree, so the modules that declare none are not imported). A name declared twice is an error."""
    found: dict[str, Backend] = {}
    for path in sorted(HERE.glob("test_*.py")):
        if not _declares(path):
            continue
        for name, backend in importlib.import_module(path.stem).BACKENDS.items():
            assert name not in found, f"backend {name!r} is declared twice ({path.name})"
            assert isinstance(backend, Backend), f"{path.name}: BACKENDS[{name!r}] is not a Backend"
            found[name] = backend
    return found
