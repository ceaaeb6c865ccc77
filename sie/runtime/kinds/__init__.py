"""Model kinds: what a card declares under its capabilities, each one module that owns its head, its
inputs preparation and its result shaping (see sie.runtime.kinds.base).

`KINDS` is the registry (kind name → module, class), like `RUNNERS` and `HEADS`: a plain dict, imported
lazily. Every kind a card can declare has an entry, and every entry names the test that exercises it
(tests/sie/runtime/test_kinds.py enforces both). Nothing outside this package compares kind names: the
engine, the batcher's compute and the server ask the kind.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tokenizers import Tokenizer

from sie.catalog.card import ModelCard, SparseOutput
from sie.models.heads import ModelHeads

if TYPE_CHECKING:
    from sie.models.runner import Runner
    from sie.runtime.kinds.base import ExtractKind, Kind, OutputKind, ScoreKind

OUTPUTS = ("dense", "sparse", "multivector")   # encode outputs, in the order a request's are computed

KINDS: dict[str, tuple[str, str]] = {
    # encode outputs (`sparse` is declared by its own kind)
    "dense": ("sie.runtime.kinds.dense", "DenseKind"),
    "splade": ("sie.runtime.kinds.splade", "SpladeKind"),
    "token-weights": ("sie.runtime.kinds.token_weights", "TokenWeightsKind"),
    "term-frequency": ("sie.runtime.kinds.term_frequency", "TermFrequencyKind"),
    "multivector": ("sie.runtime.kinds.multivector", "MultivectorKind"),
    # score
    "cross-encoder": ("sie.runtime.kinds.cross_encoder", "CrossEncoderKind"),
    "yes-no": ("sie.runtime.kinds.yes_no", "YesNoKind"),
    "late-interaction": ("sie.runtime.kinds.late_interaction", "LateInteractionKind"),
    "bi-encoder": ("sie.runtime.kinds.bi_encoder", "BiEncoderKind"),
    # extract
    "token-classification": ("sie.runtime.kinds.token_classification", "TokenClassificationKind"),
    "gliner": ("sie.runtime.kinds.gliner", "GlinerKind"),
    "nli": ("sie.runtime.kinds.nli", "NliKind"),
    "similarity": ("sie.runtime.kinds.similarity", "SimilarityKind"),
}


@cache
def kind(name: str) -> Kind:
    """The kind registered as `name` (one shared instance: kinds keep no state of their own)."""
    module, cls = KINDS[name]
    return getattr(importlib.import_module(module), cls)()


def output_kind_name(card: ModelCard, output: str) -> str:
    """The kind behind one of the card's encode outputs: the output itself, or the kind its declaration names
    (sparse: splade / token-weights / term-frequency)."""
    spec = getattr(card.capabilities.encode, output)
    return spec.kind if isinstance(spec, SparseOutput) else output


def output_kind(card: ModelCard, output: str) -> OutputKind:
    return kind(output_kind_name(card, output))  # type: ignore[return-value]


def score_kind(card: ModelCard) -> ScoreKind:
    return kind(card.capabilities.score.kind)  # type: ignore[return-value]


def extract_kind(card: ModelCard) -> ExtractKind:
    return kind(card.capabilities.extract.kind)  # type: ignore[return-value]


def declared(card: ModelCard) -> list[str]:
    """The kinds a card declares: its encode outputs in order (dense, sparse, multivector), its score kind,
    its extract kind."""
    caps = card.capabilities
    names = []
    if caps.encode is not None:
        names += [output_kind_name(card, output) for output in OUTPUTS if getattr(caps.encode, output) is not None]
    names += [spec.kind for spec in (caps.score, caps.extract) if spec is not None]
    return names


def required_heads(card: ModelCard) -> list[str]:
    """The HEADS entries a card's kinds load (what `load_heads` loads for it), each once."""
    return list(dict.fromkeys(head for name in declared(card) for head in kind(name).heads))


def load_heads(card: ModelCard, folder: Path, runner: Runner, tokenizer: Tokenizer, *, device: torch.device,
               dtype: torch.dtype) -> ModelHeads:
    """Every declared kind's `load`, in declaration order, into one ModelHeads."""
    from sie.runtime.kinds.base import HeadLoad

    heads = ModelHeads()
    at = HeadLoad(folder, runner, tokenizer, device, dtype, heads)
    for name in declared(card):
        state = kind(name).load(card, at)
        if state is not None:
            heads.kinds[name] = state
    return heads
