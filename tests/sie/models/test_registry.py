"""The registry rule (as vLLM's): every registered runner and head has a parity test that proves it against
its reference, and that test exercises it: what the test reaches (read from its syntax tree) holds the
runner's architecture, or the head's registered class or a card that needs the head. A mention elsewhere in
the file does not count. The tests say what they prove themselves (`PARITY_TESTED`, see declared.py), so a
new architecture or head is its test, and one without a parity test fails here.

The runner registry itself is read from the runner modules' `ARCHITECTURES` declarations (sie/models/__init__.py);
the tests below hold that reading to what the modules hold once imported."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
import yaml
from declared import TESTS, by_entry

import sie.models
from sie.catalog import ModelCard
from sie.models import RUNNERS, declared_architectures, runner_class
from sie.models.heads import HEADS, head_class
from sie.models.runner import Runner
from sie.runtime.kinds import required_heads

# (registry, key) → [(test module under tests/sie, the test function there that proves it)]
PARITY: dict[tuple[str, str], list[tuple[str, str]]] = by_entry("PARITY_TESTED")


def _id(entry: tuple[str, str]) -> str:
    return "-".join(entry)


class Reach:
    """What one test function can touch, read from its module's syntax tree: its decorators and body, the
    module constants those name, and the module's fixtures it requests (and theirs), transitively."""

    def __init__(self, path: Path, function: str) -> None:
        self.tree = ast.parse(path.read_text())
        top = {n.name: n for n in self.tree.body if isinstance(n, ast.FunctionDef)}
        assert function in top, f"{path.name} has no {function}"
        constants = {t.id: n.value for n in self.tree.body if isinstance(n, ast.Assign)
                     for t in n.targets if isinstance(t, ast.Name)}
        fixtures = {name for name, f in top.items() if any("fixture" in ast.unparse(d) for d in f.decorator_list)}
        self.nodes: list[ast.AST] = []
        todo, seen = [top[function]], set()
        while todo:
            node = todo.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            self.nodes.append(node)
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            if isinstance(node, ast.FunctionDef):
                names |= {a.arg for a in node.args.args}
            todo += [constants[n] for n in names if n in constants]
            todo += [top[n] for n in names if n in fixtures]

    def strings(self) -> set[str]:
        return {n.value for node in self.nodes for n in ast.walk(node)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)}

    def names(self) -> set[str]:
        return {n.id for node in self.nodes for n in ast.walk(node) if isinstance(n, ast.Name)}

    def imports(self, name: str) -> set[str]:
        """The modules this test's module imports `name` from."""
        return {n.module for n in ast.walk(self.tree) if isinstance(n, ast.ImportFrom)
                for a in n.names if (a.asname or a.name) == name}


def _cards_heads(strings: set[str]) -> set[str]:
    """The heads the capability blocks among `strings` need (a card's `capabilities:` written inline)."""
    heads: set[str] = set()
    for text in strings:
        try:
            data = yaml.safe_load(text)
            card = ModelCard.model_validate({"name": "t/reach", "source": {"path": "/x"}, "architecture": "bert",
                                             "max_tokens": 8, "capabilities": data})
        except (yaml.YAMLError, ValueError):
            continue
        heads |= set(required_heads(card))
    return heads


def exercises(reach: Reach, entry: tuple[str, str]) -> bool:
    """A runner: its architecture is a string the test reaches (a parametrized kind, a card's `architecture`).
    A head: the test names the registry's class, imported from the registry's module, or declares a card
    whose capabilities need that head."""
    registry, key = entry
    if registry == "runner":
        return key in reach.strings()
    module, cls = HEADS[key]
    return (cls in reach.names() and module in reach.imports(cls)) or key in _cards_heads(reach.strings())


def test_every_runner_and_head_has_a_parity_entry():
    wanted = {("runner", k) for k in RUNNERS} | {("head", k) for k in HEADS}
    assert wanted == set(PARITY), f"missing: {sorted(wanted - set(PARITY))}, stale: {sorted(set(PARITY) - wanted)}"


@pytest.mark.parametrize("entry", sorted(PARITY), ids=_id)
def test_parity_entry_names_an_existing_test_that_exercises_it(entry):
    for path, function in PARITY[entry]:
        assert exercises(Reach(TESTS / path, function), entry), f"{path}::{function} does not reach {entry!r}"


@pytest.mark.parametrize("entry, other", [(("runner", "bert"), ("runner", "qwen2")),
                                          (("runner", "qwen2"), ("runner", "bert")),
                                          (("head", "splade"), ("head", "colbert")),
                                          (("head", "gliner"), ("head", "token-classification")),
                                          (("runner", "auto"), ("runner", "gliner"))], ids=str)
def test_the_reach_check_refuses_a_test_that_does_not_exercise_the_entry(entry, other):
    """The check above can fail: each of these tests exercises `entry`, not `other`."""
    [(path, function)] = PARITY[entry]
    assert not exercises(Reach(TESTS / path, function), other)


@pytest.mark.parametrize("kind", sorted(RUNNERS))
def test_runner_classes_import(kind):
    assert hasattr(runner_class(kind), "load")


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_head_classes_import(kind):
    assert hasattr(head_class(kind), "load")


def test_the_registry_read_from_the_sources_is_what_each_runner_module_declares():
    """Every module of sie.models imported: the registry holds exactly the `ARCHITECTURES` each one has at run
    time, and every Runner class defined in the package is registered (one without a declaration fails)."""
    package = Path(sie.models.__file__).parent
    modules = [importlib.import_module(f"sie.models.{p.stem}") for p in sorted(package.glob("[!_]*.py"))]
    declared = {a: (m.__name__, cls) for m in modules for a, cls in getattr(m, "ARCHITECTURES", {}).items()}
    assert declared == RUNNERS
    defined = {(m.__name__, name) for m in modules for name, obj in vars(m).items()
               if inspect.isclass(obj) and issubclass(obj, Runner) and obj is not Runner
               and obj.__module__ == m.__name__}
    assert defined == set(RUNNERS.values())


def test_a_declaration_is_read_whole_and_only_as_a_literal():
    multiline = 'import x\n\nARCHITECTURES = {\n    "a": "A",  # a comment\n    "b": "B",\n}\nOTHER = 1\n'
    assert declared_architectures(multiline, "m") == {"a": "A", "b": "B"}
    assert declared_architectures('ARCHITECTURES: dict[str, str] = {"a": "A"}\n', "m") == {"a": "A"}
    assert declared_architectures('"""ARCHITECTURES = {"a": "A"} in a docstring"""\nARCHITECTURES_X = 1\n', "m") == {}
    for bad in ('ARCHITECTURES = dict(a="A")\n', 'ARCHITECTURES = {"a": A}\n', 'ARCHITECTURES = ["a"]\n'):
        with pytest.raises(ImportError, match="m: ARCHITECTURES must be a literal dict"):
            declared_architectures(bad, "m")
    with pytest.raises(ImportError, match="not a complete statement"):
        declared_architectures('ARCHITECTURES = {"a": "A",\n', "m")
