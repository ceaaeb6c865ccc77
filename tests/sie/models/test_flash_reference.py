"""The pure-torch flash_attn_varlen_func stand-in (flash_reference.varlen) is itself checked: against
scaled_dot_product_attention on padded inputs, and against flash-attn's documented bottom-right causal masks.
Only then does running our flash path through it (the `attention_path` fixture) prove anything."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from flash_reference import varlen


def _packed(lengths, heads, kv_heads, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = sum(lengths)
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(lengths), 0)
    return cu, (torch.randn(T, heads, dim, generator=g), torch.randn(T, kv_heads, dim, generator=g),
                torch.randn(T, kv_heads, dim, generator=g))


def _sdpa_padded(q, k, v, lengths, allowed):
    """Pad every sequence to the longest, mask padded keys (and what `allowed(L)` forbids), one SDPA call."""
    L = max(lengths)

    def pad(t: torch.Tensor) -> torch.Tensor:  # [T, H, D] → [B, H, L, D]
        return torch.stack([F.pad(s, (0, 0, 0, 0, 0, L - len(s))) for s in t.split(lengths)]).transpose(1, 2)

    keys = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]          # [B, L]
    mask = keys[:, None, None, :] & allowed(L)[None, None]                     # [B, 1, L, L]
    out = F.scaled_dot_product_attention(pad(q), pad(k), pad(v), attn_mask=mask,
                                         enable_gqa=k.shape[1] != q.shape[1]).transpose(1, 2)
    return torch.cat([out[b, :n] for b, n in enumerate(lengths)])


LENGTHS = [37, 20, 20, 9, 1]


@pytest.mark.parametrize("heads, kv_heads", [(4, 4), (8, 2), (6, 1)])
@pytest.mark.parametrize("causal, window", [(False, (-1, -1)), (True, (-1, -1)), (False, (3, 3)), (True, (5, 0)),
                                            (False, (2, 6))])
def test_matches_sdpa_on_padded_inputs(heads, kv_heads, causal, window):
    cu, (q, k, v) = _packed(LENGTHS, heads, kv_heads)
    left, right = window

    def allowed(L):
        i, j = torch.arange(L)[:, None], torch.arange(L)[None, :]
        ok = torch.ones(L, L, dtype=torch.bool)
        if causal:
            ok &= j <= i
        if left >= 0:
            ok &= j >= i - left
        if right >= 0:
            ok &= j <= i + right
        return ok

    got = varlen(q, k, v, cu, cu, max(LENGTHS), max(LENGTHS), causal=causal, window_size=window)
    want = _sdpa_padded(q, k, v, LENGTHS, allowed)
    assert (got - want).abs().max().item() < 1e-5


@pytest.mark.parametrize("lq, lk, expected", [
    (2, 5, [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]),
    (5, 2, [[0, 0], [0, 0], [0, 0], [1, 0], [1, 1]]),
])
def test_causal_mask_is_aligned_bottom_right_as_documented(lq, lk, expected):
    """flash-attn's docstring examples; a query row with no visible key outputs zeros."""
    g = torch.Generator().manual_seed(1)
    q = torch.randn(lq, 1, 8, generator=g)
    k = torch.randn(lk, 1, 8, generator=g)
    cq, ck = torch.tensor([0, lq], dtype=torch.int32), torch.tensor([0, lk], dtype=torch.int32)
    for key in range(lk):  # a one-hot value per key reads back which keys each query attended to
        v = torch.zeros(lk, 1, 8)
        v[key, 0, 0] = 1.0
        out = varlen(q, k, v, cq, ck, lq, lk, causal=True)[:, 0, 0]
        for row in range(lq):
            assert (out[row].item() > 0) == bool(expected[row][key]), (row, key)


def test_half_precision_inputs_are_accumulated_in_fp32_and_returned_in_their_dtype():
    cu, (q, k, v) = _packed([30, 12], 4, 2)
    want = varlen(q, k, v, cu, cu, 30, 30)
    got = varlen(q.bfloat16(), k.bfloat16(), v.bfloat16(), cu, cu, 30, 30)
    assert got.dtype == torch.bfloat16 and (got.float() - want).abs().max().item() < 0.05


def test_rejects_what_flash_attn_rejects():
    cu, (q, k, v) = _packed([5, 3], 4, 4)
    with pytest.raises(RuntimeError, match="int32"):
        varlen(q, k, v, cu.long(), cu, 5, 5)
    with pytest.raises(RuntimeError, match="hold"):
        varlen(q[:-1], k, v, cu, cu, 5, 5)
    with pytest.raises(RuntimeError, match="max_seqlen"):
        varlen(q, k, v, cu, cu, 4, 5)
    _, (q3, k3, v3) = _packed([5, 3], 4, 3)
    with pytest.raises(RuntimeError, match="must divide"):
        varlen(q3, k3, v3, cu, cu, 5, 5)
