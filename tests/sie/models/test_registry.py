"""The registry rule (as vLLM's): every registered runner and head names the parity test that proves it
against its reference, and that test exists and exercises it: what the test reaches (read from its syntax
tree) holds the runner's architecture, or the head's registered class or a card that needs the head. A
mention elsewhere in the file does not count. A new architecture or head without a parity test fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from sie.catalog import ModelCard
from sie.models import RUNNERS, runner_class
from sie.models.heads import HEADS, head_class
from sie.runtime.kinds import required_heads

TESTS = Path(__file__).parent.parent
# registry entry → (test file under tests/sie, the test function that proves it against its reference)
PARITY = {
    "bert": ("models/test_bert_parity.py", "test_token_states_match_reference"),
    "roberta": ("models/test_bert_parity.py", "test_token_states_match_reference"),
    "xlm-roberta": ("models/test_bert_parity.py", "test_token_states_match_reference"),
    "modernbert": ("models/test_decoder_and_modernbert_parity.py", "test_token_states_match_reference"),
    "qwen2": ("models/test_decoder_and_modernbert_parity.py", "test_token_states_match_reference"),
    "qwen3": ("models/test_decoder_and_modernbert_parity.py", "test_token_states_match_reference"),
    "auto": ("runtime/test_cards_on_tiny_models.py", "test_fallback_runner_matches_own_runner"),
    "gliner": ("runtime/test_gliner.py", "test_span_probabilities_match_the_gliner_package"),
    "splade": ("models/test_head_parity.py", "test_splade_matches_masked_lm_reference"),
    "token-weights": ("models/test_head_parity.py",
                      "test_bge_m3_sparse_and_multivector_heads_match_flagembedding_semantics"),
    "colbert": ("models/test_head_parity.py", "test_colbert_head_with_mask_augmentation_matches_reference"),
    "sequence-classification": ("models/test_head_parity.py", "test_sequence_classification_matches_reference"),
    "yes-no": ("models/test_head_parity.py", "test_yes_no_matches_causal_lm_next_token_logits"),
    "token-classification": ("models/test_head_parity.py", "test_token_classification_matches_reference"),
    "gliner-head": ("runtime/test_gliner.py", "test_span_probabilities_match_the_gliner_package"),
}


def _entry(kind: str, is_head: bool) -> str:
    return "gliner-head" if is_head and kind == "gliner" else kind


def _registered(entry: str) -> tuple[str, str]:
    """The registry ("runner" | "head") and key behind a PARITY entry."""
    if entry == "gliner-head":
        return "head", "gliner"
    return ("runner", entry) if entry in RUNNERS else ("head", entry)


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


def exercises(reach: Reach, entry: str) -> bool:
    """A runner: its architecture is a string the test reaches (a parametrized kind, a card's `architecture`).
    A head: the test names the registry's class, imported from the registry's module, or declares a card
    whose capabilities need that head."""
    registry, key = _registered(entry)
    if registry == "runner":
        return key in reach.strings()
    module, cls = HEADS[key]
    return (cls in reach.names() and module in reach.imports(cls)) or key in _cards_heads(reach.strings())


def test_every_runner_and_head_has_a_parity_entry():
    wanted = {_entry(k, False) for k in RUNNERS} | {_entry(k, True) for k in HEADS}
    assert wanted == set(PARITY), f"missing: {sorted(wanted - set(PARITY))}, stale: {sorted(set(PARITY) - wanted)}"


@pytest.mark.parametrize("entry", sorted(PARITY))
def test_parity_entry_names_an_existing_test_that_exercises_it(entry):
    path, function = PARITY[entry]
    assert exercises(Reach(TESTS / path, function), entry), f"{path}::{function} does not reach {entry!r}"


@pytest.mark.parametrize("entry, other", [("bert", "qwen2"), ("qwen2", "bert"), ("splade", "colbert"),
                                          ("gliner-head", "token-classification"), ("auto", "gliner")])
def test_the_reach_check_refuses_a_test_that_does_not_exercise_the_entry(entry, other):
    """The check above can fail: each of these tests exercises `entry`, not `other`."""
    path, function = PARITY[entry]
    assert not exercises(Reach(TESTS / path, function), other)


@pytest.mark.parametrize("kind", sorted(RUNNERS))
def test_runner_classes_import(kind):
    assert hasattr(runner_class(kind), "load")


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_head_classes_import(kind):
    assert hasattr(head_class(kind), "load")
