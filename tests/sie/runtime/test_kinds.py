"""The model-kind registry rule (as vLLM's for architectures): every kind a card can declare has a KINDS
entry, every entry is the kind it says it is, and every entry names the test that exercises it end to end
against a reference. A new kind in the card schema without a registry entry and such a test fails here.

"Exercises" is checked on the test's own code: the card it runs must declare the kind — a card written in
the test (a YAML literal in the function, its parametrization, a module constant it reads or a fixture it
takes), or a bundled catalog card the test names and whose declaration holds the kind.
"""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from sie.catalog import Catalog
from sie.catalog.card import Capabilities
from sie.models.heads import HEADS
from sie.runtime.kinds import KINDS, declared, kind
from sie.runtime.kinds.base import ExtractKind, OutputKind, ScoreKind

TESTS = Path(__file__).parent.parent
CATALOG = Catalog.from_dirs()
# kind → (test file under tests/sie, test function, where its card comes from: "yaml" or "catalog:<name>")
EXERCISED = {
    "dense": ("runtime/test_encode.py", "test_fp32_matches_sentence_transformers_on_240_varied_texts",
              "catalog:sentence-transformers/all-MiniLM-L6-v2"),
    "splade": ("runtime/test_encode_outputs.py", "test_splade_sparse_vectors_match_reference", "yaml"),
    "token-weights": ("runtime/test_encode_outputs.py", "test_bge_m3_three_outputs_in_one_call", "yaml"),
    "term-frequency": ("runtime/test_encode_outputs.py", "test_term_frequency_sparse_needs_no_forward_pass",
                       "catalog:all-MiniLM-L6-v2"),
    "multivector": ("runtime/test_score.py", "test_late_interaction_matches_colbert", "yaml"),
    "cross-encoder": ("runtime/test_score.py", "test_cross_encoder_matches_pair_logits", "yaml"),
    "yes-no": ("runtime/test_score.py", "test_yes_no_decoder_reranker_matches_the_qwen3_reranker_recipe", "yaml"),
    "late-interaction": ("runtime/test_score.py", "test_late_interaction_matches_colbert", "yaml"),
    "bi-encoder": ("runtime/test_score.py", "test_bi_encoder_scores_by_cosine", "yaml"),
    "token-classification": ("runtime/test_extract.py", "test_token_classification_matches_the_transformers_pipeline",
                             "yaml"),
    "gliner": ("runtime/test_gliner.py", "test_entities_match_the_gliner_package", "yaml"),
    "nli": ("runtime/test_extract.py", "test_nli_zero_shot_matches_the_transformers_pipeline", "yaml"),
    "similarity": ("runtime/test_extract.py", "test_similarity_zero_shot_classes_on_the_bundled_model",
                   "catalog:all-MiniLM-L6-v2"),
}
FAMILY = {"encode": OutputKind, "score": ScoreKind, "extract": ExtractKind}


def declarable() -> dict[str, str]:
    """Every kind the card schema lets a card declare → the capability it is declared under. An encode
    output is a kind by itself unless its declaration names one (`sparse: {kind: ...}`)."""
    out: dict[str, str] = {}
    for capability, info in Capabilities.model_fields.items():
        spec = _model(info.annotation)
        if capability == "encode":
            for output, output_info in spec.model_fields.items():
                chooser = _model(output_info.annotation).model_fields.get("kind")
                names = typing.get_args(chooser.annotation) if chooser else (output,)
                out.update(dict.fromkeys(names, capability))
        else:
            out.update(dict.fromkeys(typing.get_args(spec.model_fields["kind"].annotation), capability))
    return out


def _model(annotation) -> type[BaseModel]:
    """The pydantic model inside `X | None`."""
    return next(a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel))


def test_every_declarable_kind_has_exactly_one_registry_entry():
    kinds = declarable()
    assert len(kinds) == 13 and {"dense", "splade", "cross-encoder", "gliner", "similarity"} <= set(kinds)
    missing, stale = sorted(set(kinds) - set(KINDS)), sorted(set(KINDS) - set(kinds))
    assert set(KINDS) == set(kinds), f"missing: {missing}, stale: {stale}"
    assert set(EXERCISED) == set(KINDS)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_entry_is_the_kind_it_names(name):
    found = kind(name)
    assert found.name == name and found is kind(name)
    assert isinstance(found, FAMILY[declarable()[name]])
    assert set(found.heads) <= set(HEADS)


def test_every_bundled_card_declares_registered_kinds_only():
    for card in CATALOG:
        assert set(declared(card)) <= set(KINDS), card.name
    assert {k for card in CATALOG for k in declared(card)} >= {"dense", "splade", "token-weights", "term-frequency",
                                                              "multivector", "cross-encoder", "yes-no", "nli",
                                                              "late-interaction", "bi-encoder", "gliner",
                                                              "token-classification", "similarity"}


def _reachable_strings(tree: ast.Module, function: ast.FunctionDef) -> list[str]:
    """String constants of the test, its decorators, the module constants it reads and the module fixtures
    (functions) it takes as parameters or calls."""
    top = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    constants = {t.id: n for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    used = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)} | {a.arg for a in function.args.args}
    nodes = [function, *(constants[u] for u in used if u in constants), *(top[u] for u in used if u in top)]
    return [c.value for node in nodes for c in ast.walk(node)
            if isinstance(c, ast.Constant) and isinstance(c.value, str)]


def _declares(text: str, name: str, capability: str) -> bool:
    by_kind = re.search(rf"\bkind: {re.escape(name)}\b", text)
    as_output = capability == "encode" and re.search(rf"\b{re.escape(name)}: {{", text)
    return bool(by_kind or as_output)


@pytest.mark.parametrize("name", sorted(EXERCISED))
def test_entry_names_a_test_that_exercises_it(name):
    path, function, source = EXERCISED[name]
    tree = ast.parse((TESTS / path).read_text())
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    assert found, f"{path} has no test {function}"
    strings = _reachable_strings(tree, found[0])
    if source.startswith("catalog:"):
        model = source.removeprefix("catalog:")
        assert model in strings, f"{path}::{function} never names {model}"
        assert name in declared(CATALOG.get(model)), f"the bundled card {model} does not declare {name}"
    else:
        assert any(_declares(s, name, declarable()[name]) for s in strings), \
            f"{path}::{function} runs no card declaring {name}"
