"""The pipelines reach models only through the Engine protocol: no module under pipelines/ imports the
engine's internals (its runtime, its catalog or its forward passes), at the top or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pipelines

INTERNALS = ("sie.runtime", "sie.catalog", "sie.models")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def test_no_pipelines_module_imports_the_engines_internals():
    root = Path(pipelines.__file__).parent
    files = sorted(root.rglob("*.py"))
    offending = [f"{path.relative_to(root.parent)}:{line} imports {module}"
                 for path in files for line, module in imported_modules(path)
                 if any(module == p or module.startswith(p + ".") for p in INTERNALS)]
    assert len(files) > 30 and offending == []
    assert any(module == "sie.protocol" for path in files for _, module in imported_modules(path))
