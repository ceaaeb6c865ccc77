"""Forward passes. `RUNNERS` maps a card's `architecture` to the runner that implements it: (module, class).

Each runner module says which architectures it runs, in one top-level literal:

    ARCHITECTURES = {"bert": "BertRunner", "roberta": "BertRunner"}

The registry reads those declarations from the package's source files without importing the modules, so
reading the catalog never imports torch, and a new family is its runner module with no line to add here.
Every registered architecture has a parity test against its reference (tests/sie/models/test_registry.py).
"""

from __future__ import annotations

import importlib
import os

DECLARATION = "ARCHITECTURES"


def declared_architectures(source: str, where: str) -> dict[str, str]:
    """architecture → class name, from the `ARCHITECTURES` literal of one module's source ({} without one).

    Only that statement is parsed, not the module: a whole runner module's syntax tree costs ~5 ms, this
    statement microseconds. It is the shortest run of lines from `ARCHITECTURES` that parses, which is the
    whole statement, since a statement only continues past a line inside brackets."""
    import ast  # here, not at the top: importing sie.models (for pooling, say) does not pay for it

    source = "\n" + source
    start = source.find(f"\n{DECLARATION}")
    if start < 0 or source[start + 1 + len(DECLARATION):][:1] not in (" ", ":", "="):
        return {}
    lines = source[start + 1:].splitlines()
    for end in range(1, len(lines) + 1):
        try:
            statement = ast.parse("\n".join(lines[:end])).body[0]
        except SyntaxError:
            continue
        try:
            value = ast.literal_eval(statement.value)
        except (AttributeError, ValueError):
            value = None
        if not (isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
            raise ImportError(f"{where}: {DECLARATION} must be a literal dict of architecture → runner class name")
        return value
    raise ImportError(f"{where}: {DECLARATION} is not a complete statement")


def _discover() -> dict[str, tuple[str, str]]:
    found: dict[str, tuple[str, str]] = {}
    folder = os.path.dirname(__file__)  # os, not pathlib: pathlib would add ~4 ms to importing sie.models
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".py") and not n.startswith("_")):
        module = f"{__name__}.{name[:-3]}"
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            source = f.read()
        for architecture, cls in declared_architectures(source, module).items():
            if architecture in found:
                raise ImportError(f"architecture {architecture!r} is declared by both {found[architecture][0]} "
                                  f"and {module}")
            found[architecture] = (module, cls)
    return found


#: architecture → (module, class). Declared here for readers and type checkers; the value is `runners()`, built
#: by `__getattr__` below the first time anyone asks for it.
RUNNERS: dict[str, tuple[str, str]]
_runners: dict[str, tuple[str, str]] | None = None


def runners() -> dict[str, tuple[str, str]]:
    """The registry, read on first use (~1 ms: 24 small files read, 5 statements parsed); `RUNNERS` is this dict
    (tests and bench/gpu.py add entries to it)."""
    global _runners
    if _runners is None:
        _runners = _discover()
    return _runners


def __getattr__(name: str) -> dict[str, tuple[str, str]]:
    # `sie.models.RUNNERS`, built when first asked for rather than when any sie.models submodule is imported.
    if name == "RUNNERS":
        return runners()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def runner_class(architecture: str) -> type:
    module, cls = runners()[architecture]
    return getattr(importlib.import_module(module), cls)
