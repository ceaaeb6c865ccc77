"""Dense head: token states → one vector per sequence (pool, Matryoshka-truncate, normalize)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sie.models.runner import PackedBatch


def pool(hidden: torch.Tensor, batch: PackedBatch, mode: str) -> torch.Tensor:
    """[T, H] packed token states → [B, H]. Mean pooling averages every token, specials included
    (as sentence-transformers does: they are inside the attention mask)."""
    cu = batch.cu_seqlens.long()
    if mode == "cls":
        return hidden.index_select(0, cu[:-1])
    if mode == "last":
        return hidden.index_select(0, cu[1:] - 1)
    if mode == "mean":
        lengths = torch.tensor(batch.lengths, device=hidden.device)
        seq_of_token = torch.repeat_interleave(torch.arange(batch.num_seqs, device=hidden.device), lengths)
        sums = torch.zeros(batch.num_seqs, hidden.shape[1], device=hidden.device, dtype=torch.float32)
        sums.index_add_(0, seq_of_token, hidden.float())
        return sums / lengths[:, None]
    raise ValueError(f"pooling: unknown mode '{mode}'; valid: cls, mean, last")


def finish(vectors: torch.Tensor, *, dims: int | None, normalize: bool) -> torch.Tensor:
    """Matryoshka truncation to `dims` (then renormalization when `normalize`)."""
    vectors = vectors.float()
    if dims is not None and dims < vectors.shape[1]:
        vectors = vectors[:, :dims]
    return F.normalize(vectors, dim=-1) if normalize else vectors
