"""Who may import whom (ARCHITECTURE, "Rooms"): sie/ imports neither connectors nor pipelines (they plug in
through entry points), connectors/ imports neither sie nor pipelines. Checked on the syntax tree of every
module: import statements anywhere in a file, and importlib.import_module / __import__ of a constant name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"sie": ("connectors", "pipelines"), "connectors": ("sie", "pipelines")}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_a_room_imports_no_room_above_it(room):
    files = sorted((ROOT / room).rglob("*.py"))
    assert len(files) > 10, f"{room}/: expected its modules, found {len(files)}"
    offending = []
    for file in files:
        for line, module in imported_modules(ast.parse(file.read_text(), str(file))):
            if module.split(".")[0] in FORBIDDEN[room]:
                offending.append(f"{file.relative_to(ROOT)}:{line} imports {module}")
    assert offending == []


def test_the_check_sees_imports_inside_functions_and_by_name():
    tree = ast.parse("def f():\n    from pipelines.rest import mount\n"
                     "import importlib\nimportlib.import_module('connectors.base')\n")
    assert sorted(m for _, m in imported_modules(tree)) == ["connectors.base", "importlib", "pipelines.rest"]
