"""VarlenAttention (length-bucketed, padded only inside attention) vs per-sequence dense attention."""

from __future__ import annotations

import random

import pytest
import torch

from sie.models.attention import MATH_MAX_LEN, VarlenAttention, group_lengths
from sie.models.runner import PackedBatch


def reference(q, k, v, lengths, *, causal=False, window=None):
    out, start = [], 0
    rep = q.shape[1] // k.shape[1]
    for n in lengths:
        qs, ks, vs = (t[start:start + n].transpose(0, 1).double() for t in (q, k, v))  # [H, n, D]
        ks, vs = ks.repeat_interleave(rep, 0), vs.repeat_interleave(rep, 0)
        scores = qs @ ks.transpose(1, 2) / q.shape[-1] ** 0.5
        i = torch.arange(n)
        allowed = torch.ones(n, n, dtype=torch.bool)
        if causal:
            allowed &= i[None, :] <= i[:, None]
        if window is not None:
            allowed &= (i[None, :] - i[:, None]).abs() <= window
        scores = scores.masked_fill(~allowed, float("-inf"))
        out.append((scores.softmax(-1) @ vs).transpose(0, 1))
        start += n
    return torch.cat(out).float()


def packed(lengths, heads=4, kv_heads=4, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = sorted(lengths, reverse=True)
    batch = PackedBatch.from_sequences([[5] * n for n in lengths])
    T = sum(lengths)
    return batch, (torch.randn(T, heads, dim, generator=g), torch.randn(T, kv_heads, dim, generator=g),
                   torch.randn(T, kv_heads, dim, generator=g))


LENGTHS = {
    "one": [1],
    "equal": [7, 7, 7],
    "ragged_short": [1, 2, 3, 9, 17, 33, 64],
    "ragged_across_math_threshold": [3, 40, MATH_MAX_LEN - 1, MATH_MAX_LEN + 5, 300],
}


@pytest.mark.parametrize("name", LENGTHS)
@pytest.mark.parametrize("causal, window", [(False, None), (True, None), (False, 4), (True, 6)])
def test_matches_dense_reference(name, causal, window, attention_path):
    batch, (q, k, v) = packed(LENGTHS[name])
    got = VarlenAttention(batch, causal=causal, window=window)(q, k, v)
    want = reference(q, k, v, batch.lengths, causal=causal, window=window)
    assert (got - want).abs().max().item() < 1e-5


def test_grouped_query_attention(attention_path):
    batch, (q, k, v) = packed([5, 30, 200, 260], heads=8, kv_heads=2)
    for causal in (False, True):
        got = VarlenAttention(batch, causal=causal)(q, k, v)
        assert (got - reference(q, k, v, batch.lengths, causal=causal)).abs().max().item() < 1e-5


def test_bf16_compute_dtype_returns_input_dtype_close_to_fp32():
    batch, (q, k, v) = packed([3, 50, 120])
    got = VarlenAttention(batch, compute_dtype=torch.bfloat16)(q, k, v)
    assert got.dtype == torch.float32
    assert (got - reference(q, k, v, batch.lengths)).abs().max().item() < 0.05


def test_groups_cover_every_sequence_once_with_bounded_padding():
    rng = random.Random(0)
    lengths = sorted((rng.randint(1, 512) for _ in range(500)), reverse=True)
    groups = group_lengths(tuple(lengths))
    assert groups[0][0] == 0 and groups[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
    for s, e in groups:
        assert lengths[s] - lengths[e - 1] <= max(8, lengths[s] // 8)


def test_key_lengths_hide_trailing_tokens_as_keys_only(attention_path):
    """ColBERT's [MASK] query padding: every token still gets an output, but only the first key_lengths[i]
    tokens of a sequence are attended to."""
    lengths = [32, 32, 20, 7]
    keys = [10, 32, 5, 7]
    g = torch.Generator().manual_seed(3)
    batch = PackedBatch.from_sequences([[5] * n for n in lengths], key_lengths=keys)
    T = sum(lengths)
    q, k, v = (torch.randn(T, 4, 16, generator=g) for _ in range(3))
    got = VarlenAttention(batch)(q, k, v)
    want, start = [], 0
    for n, kl in zip(lengths, keys):
        qs, ks, vs = (t[start:start + n].transpose(0, 1).double() for t in (q, k, v))
        scores = (qs @ ks[:, :kl].transpose(1, 2)) / 16 ** 0.5
        want.append((scores.softmax(-1) @ vs[:, :kl]).transpose(0, 1))
        start += n
    assert (got - torch.cat(want).float()).abs().max().item() < 1e-5
    with pytest.raises(ValueError, match="key_lengths"):
        PackedBatch.from_sequences([[5] * 3], key_lengths=[4])


def test_inputs_flash_attn_cannot_take_stay_on_sdpa(monkeypatch):
    """flash-attn takes fp16/bf16 only (a card may run fp32 on CUDA), and aligns windows bottom-right when a
    sequence has fewer keys than queries: both go to SDPA, with the same result."""
    from flash_reference import varlen

    from sie.models import attention

    calls = []
    kernel = attention.FlashKernel(lambda *a, **kw: calls.append(1) or varlen(*a, **kw), frozenset({"cpu"}),
                                   frozenset({torch.bfloat16}))
    monkeypatch.setattr(attention, "FLASH", kernel)
    batch, (q, k, v) = packed([9, 30, 64])
    got = VarlenAttention(batch, window=4)(q, k, v)
    assert not calls and (got - reference(q, k, v, batch.lengths, window=4)).abs().max().item() < 1e-5
    keyed = PackedBatch.from_sequences([[5] * n for n in (20, 12)], key_lengths=[10, 12])
    q, k, v = (torch.randn(32, 4, 16).bfloat16() for _ in range(3))
    assert VarlenAttention(keyed, window=3).flash is None and VarlenAttention(keyed).flash is kernel
    VarlenAttention(keyed)(q, k, v)
    assert calls == [1]
