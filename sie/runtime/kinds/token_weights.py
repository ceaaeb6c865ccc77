"""bge-m3's sparse vectors: ReLU(Linear(hidden → 1)) per token, max per token id (sie.models.token_weights),
from the card's `weights` file. Special tokens are always skipped, as FlagEmbedding does (cls/eos/pad/unk,
not <mask>)."""

from __future__ import annotations

import torch

from sie.catalog.card import SparseOutput
from sie.runtime.kinds.base import HeadLoad
from sie.runtime.kinds.sparse import SparseHeads, SparseKind


class TokenWeightsKind(SparseKind):
    name = "token-weights"
    heads = ("token-weights",)

    def load_head(self, spec: SparseOutput, at: HeadLoad) -> object:
        return at.head("token-weights", lambda cls: cls.load(at.folder / spec.weights, device=at.device,
                                                             dtype=at.dtype))

    def special_ids(self, at: HeadLoad) -> list[int]:
        masks = {at.tokenizer.token_to_id(t) for t in ("<mask>", "[MASK]")}
        return [i for i in super().special_ids(at) if i not in masks]

    def skipped(self, spec: SparseOutput, state: SparseHeads) -> torch.Tensor | None:
        return state.special_ids
