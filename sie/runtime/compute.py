"""One forward pass per batch, by kind of work. The batcher calls `COMPUTE[kind](loaded, seqs, metas)`
with sequences that fit the model's token budget and gets one raw result per sequence back.

Raw results are what is shared by every request in the batch; per-request choices (Matryoshka
width, normalization, output dtype, top-k, thresholds, span decoding) are applied afterwards.
A batch holds sequences of one batcher key, so the metas of one batch agree on what is asked
(which encode outputs, which role); per-sequence data (GLiNER word positions) differs.

- encode:  {"dense": [d], "sparse": (ids, weights), "multivector": [n, d]} as asked
- score:   {"logits": [labels]} of the sequence-classification or yes/no head (pairs, NLI)
- extract: {"logits": [tokens, labels]} (token classification) or {"spans": [words, width, labels]} (GLiNER)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sie.errors import UnsupportedCapability
from sie.models.pooling import pool
from sie.runtime.loaded_model import LoadedModel
from sie.runtime.tokenizer import Tokenized

BatchCompute = Callable[[LoadedModel, list[Tokenized], list[Any]], list[Any]]


@dataclass(frozen=True)
class EncodeMeta:
    outputs: tuple[str, ...] = ("dense",)
    role: str = "document"      # "query" | "document" | "any": ColBERT drops punctuation from documents only


@dataclass(frozen=True)
class SpanMeta:
    """GLiNER: first sub-token of each text word (-1: none) and the <<ENT>> token of each label."""

    word_tokens: tuple[int, ...]
    label_tokens: tuple[int, ...]


def longest_first(seqs: list[Tokenized]) -> list[int]:
    return sorted(range(len(seqs)), key=lambda i: -len(seqs[i].ids))


def _in_order(rows: list[Any], order: list[int]) -> list[Any]:
    out: list[Any] = [None] * len(order)
    for row, i in enumerate(order):
        out[i] = rows[row]
    return out


def encode_batch(loaded: LoadedModel, seqs: list[Tokenized], metas: list[Any]) -> list[dict[str, Any]]:
    """Pooled, unnormalized full-width float32 vectors, sparse rows and multivectors, as `metas` ask."""
    meta = metas[0] if metas and isinstance(metas[0], EncodeMeta) else EncodeMeta()
    order = longest_first(seqs)
    batch = loaded.pack(seqs, order)
    hidden = loaded.runner.forward(batch)
    heads = loaded.heads
    rows: list[dict[str, Any]] = [{} for _ in order]
    if "dense" in meta.outputs:
        vectors = pool(hidden, batch, loaded.card.pooling).float().cpu().numpy()
        for r, v in zip(rows, vectors):
            r["dense"] = v
    if "sparse" in meta.outputs:
        spec = loaded.card.capabilities.encode.sparse
        skip = heads.special_ids if spec.skip_special_tokens or spec.kind == "token-weights" else None
        for r, s in zip(rows, heads.sparse(hidden, batch, skip)):
            r["sparse"] = s
    if "multivector" in meta.outputs:
        skip = heads.punctuation_ids if meta.role == "document" else None
        for r, m in zip(rows, heads.multivector(hidden, batch, skip)):
            r["multivector"] = m
    return _in_order(rows, order)


def score_batch(loaded: LoadedModel, seqs: list[Tokenized], metas: list[Any]) -> list[dict[str, Any]]:
    """Sequence logits: a cross-encoder/NLI classifier's labels, or (no, yes) of a yes/no reranker."""
    head = loaded.heads.yes_no or loaded.heads.classifier
    if head is None:
        raise UnsupportedCapability(f"model: '{loaded.card.name}' has no sequence-scoring head", field="model")
    order = longest_first(seqs)
    batch = loaded.pack(seqs, order)
    logits = head(loaded.runner.forward(batch), batch).cpu().numpy()
    return _in_order([{"logits": row} for row in logits], order)


def extract_batch(loaded: LoadedModel, seqs: list[Tokenized], metas: list[Any]) -> list[dict[str, Any]]:
    """Token-classification logits per token, or GLiNER span probabilities per text."""
    heads = loaded.heads
    order = longest_first(seqs)
    batch = loaded.pack(seqs, order)
    hidden = loaded.runner.forward(batch)
    if heads.spans is not None:
        spans = heads.spans(hidden, batch, [list(metas[i].word_tokens) for i in order],
                            [list(metas[i].label_tokens) for i in order])
        return _in_order([{"spans": s.cpu().numpy()} for s in spans], order)
    if heads.tagger is None:
        raise UnsupportedCapability(f"model: '{loaded.card.name}' has no token-level extraction head", field="model")
    logits = heads.tagger(hidden).cpu().numpy()
    cu = batch.cu_seqlens.tolist()
    return _in_order([{"logits": logits[cu[i]:cu[i + 1]]} for i in range(batch.num_seqs)], order)


COMPUTE: dict[str, BatchCompute] = {"encode": encode_batch, "score": score_batch, "extract": extract_batch}

