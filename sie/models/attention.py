"""Attention over packed sequences.

On CUDA with flash-attn installed, for fp16/bf16 inputs: `flash_attn_varlen_func` straight on the packed
tensors. Everywhere else: scaled_dot_product_attention over groups of sequences of similar length, padded
only inside attention. Nested/jagged SDPA was measured ~13x slower than padded SDPA on CPU, so it is not used.

Sequences arrive sorted longest first (see `PackedBatch`), so each group is a contiguous slice of the
packed tokens: a group of equal lengths is a zero-copy view, and outputs concatenate back in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

try:  # the `cuda` extra
    from flash_attn import flash_attn_varlen_func
except ImportError:  # pragma: no cover - depends on the machine
    flash_attn_varlen_func = None

from sie.models.runner import PackedBatch


@dataclass(frozen=True)
class FlashKernel:
    """A varlen attention function with flash-attn's signature, and the inputs it accepts.

    flash-attn runs on CUDA in fp16/bf16 only. The tests put a pure-torch function of the same signature
    here with `device_types={"cpu"}`, so this module's flash path (key gathering, windows, GQA) runs on CPU.
    """

    varlen: Callable[..., torch.Tensor]
    device_types: frozenset[str]
    dtypes: frozenset[torch.dtype]


FLASH: FlashKernel | None = None if flash_attn_varlen_func is None else FlashKernel(
    flash_attn_varlen_func, frozenset({"cuda"}), frozenset({torch.float16, torch.bfloat16}))


@dataclass(frozen=True)
class _Group:
    tok_start: int
    tok_end: int
    num_seqs: int
    max_len: int
    gather: torch.Tensor | None      # [b*max_len] token index per padded slot; None = all equal length
    valid: torch.Tensor | None       # [n_tokens] padded slot of each real token
    key_mask: torch.Tensor | None    # [b, 1, 1, max_len] True where the key is a real token


def group_lengths(lengths: tuple[int, ...]) -> list[tuple[int, int]]:
    """Split non-increasing lengths into [start, end) runs whose padding stays small.

    A sequence joins the current group while it is at most max(8, L/8) tokens shorter than the
    group's longest: padding then costs under ~12% of a group's attention, and short sequences
    are not split into many tiny SDPA calls (each call has a fixed overhead).
    """
    groups, start = [], 0
    for i in range(1, len(lengths) + 1):
        if i == len(lengths) or lengths[start] - lengths[i] > max(8, lengths[start] // 8):
            groups.append((start, i))
            start = i
    return groups


# Below this length, plain matmul-softmax-matmul beats the CPU flash kernel (measured here at head_dim 32:
# 73 vs 14 GFLOP/s at L=16, 114 vs 57 at L=64, 97 vs 112 at L=256).
MATH_MAX_LEN = 192


def _math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                    causal: bool) -> torch.Tensor:
    scores = torch.matmul(q, k.transpose(-1, -2)).mul_(q.shape[-1] ** -0.5)
    if causal:
        L = q.shape[-2]
        mask = torch.ones(L, L, dtype=torch.bool, device=q.device).tril_()
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class VarlenAttention:
    """Built once per batch (index work shared by every layer), called once per layer.

    `window`: a query sees keys at distance <= window (both sides; only the left side when causal).
    ModernBERT's local layers use local_attention // 2; a decoder's `sliding_window` W (keys with
    q - k < W) is window = W - 1.
    """

    def __init__(self, batch: PackedBatch, *, causal: bool = False, window: int | None = None,
                 compute_dtype: torch.dtype | None = None) -> None:
        self.compute_dtype = compute_dtype  # e.g. bf16 attention inside an int8 model on CPU
        self.causal = causal
        self.window = window
        self.batch = batch
        self.groups: list[_Group] | None = None  # built on the first call that does not take the flash path
        # flash-attn aligns causal masks and windows to the bottom-right corner when a sequence has fewer
        # keys than queries; ours are aligned top-left, so that (unused) combination stays on SDPA.
        self.flash = FLASH if FLASH is not None and batch.input_ids.device.type in FLASH.device_types and not (
            batch.key_lengths is not None and (causal or window is not None)) else None
        if self.flash is not None:
            self._flash_keys(batch)

    def _build_groups(self) -> list[_Group]:
        batch = self.batch
        device = batch.input_ids.device
        key_lengths = batch.key_lengths or batch.lengths
        groups: list[_Group] = []
        cu = [0]
        for n in batch.lengths:
            cu.append(cu[-1] + n)
        for s, e in group_lengths(batch.lengths):
            lens, klens = batch.lengths[s:e], key_lengths[s:e]
            b, L = e - s, lens[0]
            if all(n == L for n in lens) and klens == lens:
                groups.append(_Group(cu[s], cu[e], b, L, None, None, None))
                continue
            lens_t = torch.tensor(lens, device=device)
            j = torch.arange(L, device=device)
            starts = torch.tensor(cu[s:e], device=device) - cu[s]
            # Padded slots point at the sequence's own last token: any real row will do, the mask hides it.
            gather = (starts[:, None] + torch.minimum(j[None, :], lens_t[:, None] - 1)).reshape(-1)
            real = (j[None, :] < lens_t[:, None])
            valid = torch.nonzero(real.reshape(-1), as_tuple=True)[0]
            keys = real if klens == lens else j[None, :] < torch.tensor(klens, device=device)[:, None]
            groups.append(_Group(cu[s], cu[e], b, L, gather, valid, keys[:, None, None, :]))
        return groups

    def _flash_keys(self, batch: PackedBatch) -> None:
        """flash-attn takes keys as their own packed tensor: gather the visible ones when they differ."""
        self.key_index = None
        self.cu_keys, self.max_keys = batch.cu_seqlens, batch.max_seqlen
        key_lengths = batch.key_lengths
        if key_lengths is None:
            return
        device = batch.input_ids.device
        starts = batch.cu_seqlens[:-1].long()
        klens = torch.tensor(key_lengths, device=device)
        seq = torch.repeat_interleave(torch.arange(len(key_lengths), device=device), klens)
        first = torch.zeros(len(key_lengths) + 1, dtype=torch.int32, device=device)
        first[1:] = torch.cumsum(klens, 0)
        self.key_index = starts[seq] + torch.arange(int(first[-1]), device=device) - first[:-1].long()[seq]
        self.cu_keys, self.max_keys = first, max(key_lengths)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q: [T, H, D], k/v: [T, Hkv, D] → [T, H, D]."""
        if self.flash is not None and q.dtype in self.flash.dtypes:
            b = self.batch
            win = (-1, -1) if self.window is None else (self.window, 0 if self.causal else self.window)
            if self.key_index is not None:
                k, v = k.index_select(0, self.key_index), v.index_select(0, self.key_index)
            return self.flash.varlen(q, k, v, b.cu_seqlens, self.cu_keys, b.max_seqlen, self.max_keys,
                                     causal=self.causal, window_size=win)
        if self.groups is None:
            self.groups = self._build_groups()
        dtype = q.dtype
        if self.compute_dtype is not None and self.compute_dtype != dtype:
            q, k, v = (t.to(self.compute_dtype) for t in (q, k, v))
        outs = [self._group(g, q, k, v) for g in self.groups]
        out = outs[0] if len(outs) == 1 else torch.cat(outs, 0)
        return out.to(dtype)

    def _group(self, g: _Group, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        def padded(x: torch.Tensor) -> torch.Tensor:  # [T, H, D] → [b, H, L, D]
            x = x[g.tok_start:g.tok_end]
            if g.gather is not None:
                x = x.index_select(0, g.gather)
            return x.view(g.num_seqs, g.max_len, x.shape[1], x.shape[2]).transpose(1, 2)

        mask = self._mask(g)
        gqa = k.shape[1] != q.shape[1]
        if g.max_len <= MATH_MAX_LEN and q.device.type == "cpu" and not gqa:
            out = _math_attention(padded(q), padded(k), padded(v), mask, self.causal and mask is None)
        else:
            out = F.scaled_dot_product_attention(padded(q), padded(k), padded(v), attn_mask=mask,
                                                 is_causal=self.causal and mask is None, enable_gqa=gqa)
        out = out.transpose(1, 2).reshape(g.num_seqs * g.max_len, q.shape[1], q.shape[2])
        return out if g.valid is None else out.index_select(0, g.valid)

    def _mask(self, g: _Group) -> torch.Tensor | None:
        if not self.causal and self.window is None:
            return g.key_mask
        # Causal and/or sliding-window masks are built per group (rare paths: decoders, ModernBERT local layers).
        L, device = g.max_len, self.batch.input_ids.device
        i = torch.arange(L, device=device)
        allowed = torch.ones(L, L, dtype=torch.bool, device=device)
        if self.causal:
            allowed &= i[None, :] <= i[:, None]
        if self.window is not None:
            allowed &= (i[None, :] - i[:, None]).abs() <= self.window
        if self.causal and self.window is None and g.key_mask is None:
            return None
        mask = allowed[None, None]
        return mask if g.key_mask is None else mask & g.key_mask
