"""bge-m3's sparse head: one weight per token, ReLU(Linear(hidden → 1)), folded per token id by max.

The reference (FlagEmbedding's BGEM3 `_process_token_weights`) skips the special ids (cls, eos, pad,
unk) and keeps, for a token id seen several times, its largest weight.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sie.models.linear import Linear
from sie.models.runner import PackedBatch
from sie.models.weights import load_tensor_file


class TokenWeightsHead:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.linear = Linear(weight, bias)

    @classmethod
    def load(cls, file: Path, *, device: torch.device, dtype: torch.dtype) -> TokenWeightsHead:
        state = load_tensor_file(file)
        return cls(state["weight"].to(device=device, dtype=dtype),
                   None if "bias" not in state else state["bias"].to(device=device, dtype=dtype))

    @torch.inference_mode()
    def __call__(self, hidden: torch.Tensor, batch: PackedBatch,
                 skip_ids: torch.Tensor | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        weights = torch.relu(self.linear(hidden).float()).squeeze(-1)          # [T]
        ids = batch.input_ids
        if skip_ids is not None and len(skip_ids):
            weights = weights.masked_fill(torch.isin(ids, skip_ids), 0.0)
        out = []
        cu = batch.cu_seqlens.tolist()
        for i in range(batch.num_seqs):
            seq_ids, seq_w = ids[cu[i]:cu[i + 1]], weights[cu[i]:cu[i + 1]]
            uniq, inverse = torch.unique(seq_ids, return_inverse=True)         # ascending ids
            best = torch.zeros(len(uniq), device=hidden.device).scatter_reduce_(0, inverse, seq_w, "amax")
            keep = best > 0
            out.append((uniq[keep].to(torch.int32).cpu().numpy(), best[keep].cpu().numpy()))
        return out
