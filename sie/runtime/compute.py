"""One forward pass per batch, by kind of work. The batcher calls `COMPUTE[kind](loaded, seqs, metas)`
with sequences that fit the model's token budget and gets one raw result per sequence back.

Raw results are what is shared by every request in the batch; per-request choices (Matryoshka
width, normalization, output dtype, top-k) are applied afterwards by the Engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sie.models.pooling import pool
from sie.runtime.loaded_model import LoadedModel
from sie.runtime.tokenizer import Tokenized

BatchCompute = Callable[[LoadedModel, list[Tokenized], list[Any]], list[Any]]


def longest_first(seqs: list[Tokenized]) -> list[int]:
    return sorted(range(len(seqs)), key=lambda i: -len(seqs[i].ids))


def encode_batch(loaded: LoadedModel, seqs: list[Tokenized], metas: list[Any]) -> list[dict[str, Any]]:
    """Pooled, unnormalized full-width float32 vectors: [{"dense": np.ndarray[d]}] per sequence."""
    order = longest_first(seqs)
    batch = loaded.pack(seqs, order)
    vectors = pool(loaded.runner.forward(batch), batch, loaded.card.pooling).float().cpu().numpy()
    out: list[dict[str, Any]] = [{}] * len(seqs)
    for row, i in enumerate(order):
        out[i] = {"dense": vectors[row]}
    return out


COMPUTE: dict[str, BatchCompute] = {"encode": encode_batch}


def run_all(loaded: LoadedModel, kind: str, seqs: list[Tokenized], metas: list[Any]) -> list[Any]:
    """Every sequence through `COMPUTE[kind]`, cut into token-budget batches (no cross-request batching)."""
    out: list[Any] = [None] * len(seqs)
    for idx in loaded.batches(seqs):
        for i, r in zip(idx, COMPUTE[kind](loaded, [seqs[i] for i in idx], [metas[i] for i in idx])):
            out[i] = r
    return out
