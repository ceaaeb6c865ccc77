"""The registry rule (as vLLM's): every registered runner and head names the parity test that proves it
against its reference, and that test exists and exercises it. A new architecture or head without a
parity test fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sie.models import RUNNERS, runner_class
from sie.models.heads import HEADS, head_class

TESTS = Path(__file__).parent.parent
# registry key → (test file under tests/sie, test function, the literal that selects this key in it)
PARITY = {
    "bert": ("models/test_bert_parity.py", "test_token_states_match_reference", '"bert"'),
    "roberta": ("models/test_bert_parity.py", "test_token_states_match_reference", '"roberta"'),
    "xlm-roberta": ("models/test_bert_parity.py", "test_token_states_match_reference", '"xlm-roberta"'),
    "modernbert": ("models/test_decoder_and_modernbert_parity.py", "test_token_states_match_reference", '"modernbert"'),
    "qwen2": ("models/test_decoder_and_modernbert_parity.py", "test_token_states_match_reference", '"qwen2"'),
    "qwen3": ("models/test_decoder_and_modernbert_parity.py", "test_token_states_match_reference", '"qwen3"'),
    "auto": ("runtime/test_cards_on_tiny_models.py", "test_fallback_runner_matches_own_runner", 'arch="auto"'),
    "gliner": ("runtime/test_gliner.py", "test_span_probabilities_match_the_gliner_package", '"gliner"'),
    "splade": ("models/test_head_parity.py", "test_splade_matches_masked_lm_reference", "SpladeHead"),
    "token-weights": ("models/test_head_parity.py",
                      "test_bge_m3_sparse_and_multivector_heads_match_flagembedding_semantics", "TokenWeightsHead"),
    "colbert": ("models/test_head_parity.py", "test_colbert_head_with_mask_augmentation_matches_reference",
                "ColbertHead"),
    "sequence-classification": ("models/test_head_parity.py", "test_sequence_classification_matches_reference",
                                "SequenceClassifierHead"),
    "yes-no": ("models/test_head_parity.py", "test_yes_no_matches_causal_lm_next_token_logits", "YesNoHead"),
    "token-classification": ("models/test_head_parity.py", "test_token_classification_matches_reference",
                             "TokenClassifierHead"),
    "gliner-head": ("runtime/test_gliner.py", "test_span_probabilities_match_the_gliner_package", '"spans"'),
}


def _entry(kind: str, is_head: bool) -> str:
    return "gliner-head" if is_head and kind == "gliner" else kind


def test_every_runner_and_head_has_a_parity_entry():
    wanted = {_entry(k, False) for k in RUNNERS} | {_entry(k, True) for k in HEADS}
    assert wanted == set(PARITY), f"missing: {sorted(wanted - set(PARITY))}, stale: {sorted(set(PARITY) - wanted)}"


@pytest.mark.parametrize("key", sorted(PARITY))
def test_parity_entry_names_an_existing_test_that_exercises_it(key):
    path, function, selector = PARITY[key]
    source = (TESTS / path).read_text()
    tree = ast.parse(source)
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function]
    assert found, f"{path} has no {function}"
    # The selector is in the test itself, its parametrization, or a module constant it parametrizes over.
    assert selector in source, f"{path} never mentions {selector}"


@pytest.mark.parametrize("kind", sorted(RUNNERS))
def test_runner_classes_import(kind):
    assert hasattr(runner_class(kind), "load")


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_head_classes_import(kind):
    assert hasattr(head_class(kind), "load")
