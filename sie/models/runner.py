"""The runner contract: what every architecture family implements (kept deliberately small).

A runner is loaded once from a weights folder and then does pure tensor work on a `PackedBatch`:
token ids of all sequences concatenated, plus cumulative lengths. No padding reaches the linear
layers, layer norms or embeddings; only attention sees sequence boundaries.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch


@dataclass(frozen=True)
class PackedBatch:
    """Sequences concatenated along one axis, sorted longest first.

    `input_ids[cu_seqlens[i]:cu_seqlens[i+1]]` is sequence i. Sorting longest-first lets attention
    group sequences of similar length without scattering (see `sie.models.attention`).
    """

    input_ids: torch.Tensor        # [T] int64
    cu_seqlens: torch.Tensor       # [B+1] int32, on the runner's device
    lengths: tuple[int, ...]       # host copy of the B lengths (non-increasing)
    token_type_ids: torch.Tensor | None = None  # [T] int64; None = all zeros
    # Keys visible to every query of sequence i: its first key_lengths[i] tokens (None = all of them).
    # ColBERT queries need this: their [MASK] padding computes states but is never attended to.
    key_lengths: tuple[int, ...] | None = None

    @property
    def num_seqs(self) -> int:
        return len(self.lengths)

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def max_seqlen(self) -> int:
        return self.lengths[0] if self.lengths else 0

    def positions(self, offset: int = 0) -> torch.Tensor:
        """Position of each token inside its own sequence (plus `offset`, e.g. RoBERTa's padding_idx+1)."""
        starts = torch.repeat_interleave(self.cu_seqlens[:-1].long(),
                                         torch.tensor(self.lengths, device=self.cu_seqlens.device))
        return torch.arange(self.num_tokens, device=starts.device) - starts + offset

    @classmethod
    def from_sequences(cls, seqs: list[list[int]], device: torch.device | str = "cpu",
                       type_ids: list[list[int]] | None = None,
                       key_lengths: list[int] | None = None) -> PackedBatch:
        """Pack token-id lists that are already sorted longest first."""
        lengths = tuple(len(s) for s in seqs)
        if any(a < b for a, b in itertools.pairwise(lengths)):
            raise ValueError("PackedBatch.from_sequences needs sequences sorted longest first")
        if not lengths or min(lengths) == 0:
            raise ValueError("PackedBatch needs at least one non-empty sequence")
        flat = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
        cu = torch.zeros(len(seqs) + 1, dtype=torch.int32)
        cu[1:] = torch.cumsum(torch.tensor(lengths), 0)
        tt = None
        if type_ids is not None and any(any(t) for t in type_ids):
            tt = torch.tensor([t for s in type_ids for t in s], dtype=torch.long).to(device)
        keys = None
        if key_lengths is not None and any(k != n for k, n in zip(key_lengths, lengths, strict=True)):
            if any(not 0 < k <= n for k, n in zip(key_lengths, lengths, strict=True)):
                raise ValueError("PackedBatch key_lengths must be in 1..length of their sequence")
            keys = tuple(key_lengths)
        return cls(flat.to(device), cu.to(device), lengths, tt, keys)


class Runner(Protocol):
    """One architecture family's forward pass."""

    hidden_size: int
    device: torch.device
    dtype: torch.dtype

    @classmethod
    def load(cls, path: Path, *, device: torch.device, dtype: torch.dtype) -> Runner: ...

    def forward(self, batch: PackedBatch) -> torch.Tensor:
        """Token states for every packed token: [T, hidden_size]."""
        ...
