"""What the test modules under tests/sie say they prove, read from their syntax trees without importing them
(as tests/pipelines/test_spec.py reads `STEPS_TESTED`). A new runner family's or head's test declares itself
and the registry tests find it there: adding one touches no table in them.

- `PARITY_TESTED = {("runner" | "head", registry key): "test_function"}`: the test of this module that proves
  that registry entry against its reference (test_registry.py checks that the function reaches the entry).
- `CONTRACT_MODELS = {architecture: (tiny model, build options, card capabilities)}`: what the runner contract
  test (test_runner_contract.py) loads for that architecture. The tiny model is a preset of tests/tiny_models.py,
  a (transformers config class, arguments) pair, or "gliner" (GLiNER's own checkpoint layout).

Names of the module's other top-level literals may stand in a declaration (`("runner", "x"): TEST`, a `TINY`
config pair): they are replaced by their values.
"""

from __future__ import annotations

import ast
import copy
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent.parent  # tests/sie


def _constants(tree: ast.Module) -> dict[str, ast.expr]:
    found: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            found |= {t.id: node.value for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found[node.target.id] = node.value
    return found


class _Substitute(ast.NodeTransformer):
    def __init__(self, constants: dict[str, ast.expr], within: frozenset[str]) -> None:
        self.constants, self.within = constants, within

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if node.id in self.constants and node.id not in self.within:
            return _Substitute(self.constants, self.within | {node.id}).visit(copy.deepcopy(self.constants[node.id]))
        return node


def declarations(name: str) -> dict[str, Any]:
    """test module (its path under tests/sie) → the value of its top-level `name`, for each module that has one."""
    found: dict[str, Any] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        text = path.read_text()
        if name not in text:  # most modules declare nothing: skip parsing them
            continue
        constants = _constants(ast.parse(text))
        if name in constants:
            value = _Substitute(constants, frozenset({name})).visit(copy.deepcopy(constants[name]))
            found[path.relative_to(TESTS).as_posix()] = ast.literal_eval(value)
    return found


def by_entry(name: str) -> dict[Any, list[tuple[str, Any]]]:
    """Each key declared under `name` → [(module, its value there)], from every module that declares it."""
    merged: dict[Any, list[tuple[str, Any]]] = {}
    for module, table in declarations(name).items():
        for key, value in table.items():
            merged.setdefault(key, []).append((module, value))
    return merged
