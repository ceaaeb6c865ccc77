"""One forward pass per batch. The batcher calls `COMPUTE[work](loaded, seqs, metas)` with sequences that fit
the model's token budget and gets one raw row per sequence back.

Every kind of work (encode, score, extract: the batcher's labels) is the same pass: pack the sequences
(they come longest first), run the runner once, and let each kind the batch asks for fill its key of every
row from the token states (sie.runtime.kinds: dense → "dense", splade → "sparse", cross-encoder → "logits",
GLiNER → "spans", ...). A batch holds sequences of one batcher key, so its metas agree on what is asked (which
encode outputs, which role, which kind); per-sequence data (GLiNER word positions) differs.

Raw rows are what every request in the batch shares; per-request choices (Matryoshka width,
normalization, output dtype, top-k, thresholds, span decoding) are applied afterwards by the kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sie.catalog.card import ModelCard
from sie.runtime.kinds import kind, output_kind_name
from sie.runtime.loaded_model import LoadedModel
from sie.runtime.tokenizer import Tokenized

BatchCompute = Callable[[LoadedModel, list[Tokenized], list[Any]], list[Any]]


@dataclass(frozen=True)
class EncodeMeta:
    outputs: tuple[str, ...] = ("dense",)
    role: str = "document"      # "query" | "document" | "any": ColBERT drops punctuation from documents only

    def kinds(self, card: ModelCard) -> tuple[str, ...]:
        return tuple(output_kind_name(card, output) for output in self.outputs)


def forward_batch(loaded: LoadedModel, seqs: list[Tokenized], metas: list[Any]) -> list[dict[str, Any]]:
    """One row per sequence, in order: each asked kind's value under its key. `seqs` come longest first, as
    packing needs them (the batcher cuts its batches that way)."""
    batch = loaded.pack(seqs, list(range(len(seqs))))
    hidden = loaded.runner.forward(batch)
    rows: list[dict[str, Any]] = [{} for _ in seqs]
    for name in metas[0].kinds(loaded.card):
        asked = kind(name)
        for r, value in zip(rows, asked.compute(loaded, hidden, batch, metas)):
            r[asked.row] = value
    return rows


COMPUTE: dict[str, BatchCompute] = dict.fromkeys(("encode", "score", "extract"), forward_batch)
