"""Yes/no reranking on a decoder (Qwen3-Reranker style): the next-token logits of "yes" and "no" after
the last token of a prompt that asks whether the document answers the query.

Only the two lm_head rows are kept (the full head is vocab × hidden); tied checkpoints (lm_head absent)
use the same rows of the input embeddings. Relevance = P(yes | {yes, no}) = sigmoid(l_yes − l_no),
which is what the reference's log_softmax over [no, yes] then exp computes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sie.errors import ModelLoadFailed
from sie.models.pooling import pool
from sie.models.runner import PackedBatch
from sie.models.weights import read_named


class YesNoHead:
    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows  # [2, hidden]: the "no" row, then the "yes" row

    @classmethod
    def load(cls, folder: Path, config, *, yes_id: int, no_id: int, device: torch.device,
             dtype: torch.dtype) -> YesNoHead:
        names = ["lm_head.weight", "embed_tokens.weight"]
        found = read_named(folder, names, required=False)
        weight = found.get("lm_head.weight")
        if weight is None:
            if not getattr(config, "tie_word_embeddings", False) or "embed_tokens.weight" not in found:
                raise ModelLoadFailed(f"{folder}: no lm_head.weight and the embeddings are not tied; "
                                      "a yes-no reranker needs the language-model head")
            weight = found["embed_tokens.weight"]
        for name, i in (("yes_token", yes_id), ("no_token", no_id)):
            if not 0 <= i < weight.shape[0]:
                raise ModelLoadFailed(f"capabilities.score.{name}: token id {i} is outside the vocabulary "
                                      f"({weight.shape[0]})")
        return cls(weight[[no_id, yes_id]].clone().to(device=device, dtype=dtype))

    @torch.inference_mode()
    def __call__(self, hidden: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        """[T, H] → [B, 2] float32 logits (no, yes) of the token after each sequence."""
        return (pool(hidden, batch, "last") @ self.rows.T).float()
