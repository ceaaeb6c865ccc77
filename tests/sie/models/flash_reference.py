"""A pure-torch `flash_attn_varlen_func`: flash-attn 2's signature and semantics, for running our flash path
on CPU (flash-attn itself is CUDA-only and not installed here).

Semantics, from flash-attn's docstring: q [total_q, H, D], k/v [total_k, Hkv, D] with H divisible by Hkv
(query head h reads kv head h // (H // Hkv)); cu_seqlens int32 [B+1]; softmax_scale defaults to D**-0.5;
causal masks and windows are aligned to the bottom-right corner: query i of a sequence with Lq queries
and Lk keys sees keys j with i + Lk - Lq - left <= j <= i + Lk - Lq + right (causal: right = 0), -1 = no
limit; a query that sees no key gets zeros. Inputs flash-attn rejects are rejected here too (wrong index
dtype, shapes that disagree with cu_seqlens, head counts that do not divide), so a caller's bug fails on CPU.
"""

from __future__ import annotations

import torch


def varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0, softmax_scale=None,
           causal=False, window_size=(-1, -1), softcap=0.0, alibi_slopes=None, deterministic=False,
           return_attn_probs=False, block_table=None):
    if dropout_p or softcap or alibi_slopes is not None or return_attn_probs or block_table is not None:
        raise NotImplementedError("reference varlen: inference only (no dropout, softcap, alibi, paged kv)")
    for name, cu in (("cu_seqlens_q", cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k)):
        if cu.dtype != torch.int32 or cu.dim() != 1 or cu.device != q.device:
            raise RuntimeError(f"{name} must be a 1-d int32 tensor on q's device, got {cu.dtype} on {cu.device}")
    if len(cu_seqlens_q) != len(cu_seqlens_k):
        raise RuntimeError("cu_seqlens_q and cu_seqlens_k must describe the same number of sequences")
    if q.dim() != 3 or k.shape != v.shape or k.shape[1:] != (k.shape[1], q.shape[2]) or q.dtype != k.dtype:
        raise RuntimeError(f"q {tuple(q.shape)} {q.dtype}, k {tuple(k.shape)} {k.dtype}, v {tuple(v.shape)}")
    heads, kv_heads = q.shape[1], k.shape[1]
    if heads % kv_heads:
        raise RuntimeError(f"number of heads in key/value ({kv_heads}) must divide those of query ({heads})")
    cq, ck = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    if cq[-1] != q.shape[0] or ck[-1] != k.shape[0]:
        raise RuntimeError(f"cu_seqlens end at {cq[-1]}/{ck[-1]} but q/k hold {q.shape[0]}/{k.shape[0]} tokens")
    lq = [b - a for a, b in zip(cq, cq[1:])]
    lk = [b - a for a, b in zip(ck, ck[1:])]
    if max(lq) > max_seqlen_q or max(lk) > max_seqlen_k:
        raise RuntimeError(f"max_seqlen {max_seqlen_q}/{max_seqlen_k} below the longest {max(lq)}/{max(lk)}")
    scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
    left, right = window_size
    if causal:
        right = 0
    out = torch.empty_like(q)
    for b in range(len(lq)):
        qs = q[cq[b]:cq[b + 1]].float()
        ks, vs = (t[ck[b]:ck[b + 1]].float().repeat_interleave(heads // kv_heads, dim=1) for t in (k, v))
        scores = torch.einsum("qhd,khd->hqk", qs, ks) * scale
        i = torch.arange(lq[b], device=q.device)[:, None] + (lk[b] - lq[b])
        j = torch.arange(lk[b], device=q.device)[None, :]
        allowed = torch.ones(lq[b], lk[b], dtype=torch.bool, device=q.device)
        if left >= 0:
            allowed &= j >= i - left
        if right >= 0:
            allowed &= j <= i + right
        probs = scores.masked_fill(~allowed, float("-inf")).softmax(-1).nan_to_num(0.0)
        out[cq[b]:cq[b + 1]] = torch.einsum("hqk,khd->qhd", probs, vs).to(q.dtype)
    return out
