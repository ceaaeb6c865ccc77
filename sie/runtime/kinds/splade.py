"""SPLADE sparse vectors: the masked-LM head's log(1 + ReLU(logits)), max over each sequence's tokens
(sie.models.splade); special tokens are skipped when the card says so."""

from __future__ import annotations

from sie.catalog.card import SparseOutput
from sie.runtime.kinds.base import HeadLoad
from sie.runtime.kinds.sparse import SparseKind


class SpladeKind(SparseKind):
    name = "splade"
    heads = ("splade",)

    def load_head(self, spec: SparseOutput, at: HeadLoad) -> object:
        return at.head("splade", lambda cls: cls.load(at.folder, at.config, device=at.device, dtype=at.dtype))
