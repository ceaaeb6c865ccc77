"""Shared pieces of the parity tests: ragged id batches and the padded transformers reference."""

from __future__ import annotations

import random

import torch

from sie.models.runner import PackedBatch

CPU = torch.device("cpu")
TOLERANCE = 1e-4  # max-abs, fp32


def ragged(n: int, max_len: int, seed: int, *, low: int = 1000, high: int = 29999) -> list[list[int]]:
    """n id sequences, lengths 1..max_len (both ends when n >= 2), longest first, ids clear of special ids."""
    rng = random.Random(seed)
    lengths = [1, max_len] + [rng.randint(1, max_len) for _ in range(n - 2)] if n >= 2 else [rng.randint(1, max_len)]
    seqs = [[rng.randint(low, high) for _ in range(k)] for k in lengths]
    return sorted(seqs, key=len, reverse=True)


def padded(seqs: list[list[int]], pad: int, key_lengths: list[int] | None = None,
           type_ids: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask (and token_type_ids) for a transformers model."""
    L = max(map(len, seqs))
    ids = torch.full((len(seqs), L), pad, dtype=torch.long)
    mask = torch.zeros(len(seqs), L, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : (key_lengths[i] if key_lengths else len(s))] = 1
    out = {"input_ids": ids, "attention_mask": mask}
    if type_ids is not None:
        tt = torch.zeros_like(ids)
        for i, t in enumerate(type_ids):
            tt[i, : len(t)] = torch.tensor(t)
        out["token_type_ids"] = tt
    return out


def per_sequence(packed: torch.Tensor, batch: PackedBatch) -> list[torch.Tensor]:
    cu = batch.cu_seqlens.tolist()
    return [packed[cu[i]: cu[i + 1]] for i in range(batch.num_seqs)]


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()
