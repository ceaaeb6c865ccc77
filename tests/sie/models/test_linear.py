"""The precision-swappable linear layers: bucketed row counts change the GEMM's shape, never its answer."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sie.models.linear import Bf16Linear, Int8Linear, Linear, bucket_rows


def test_bucket_rows_pads_little_and_yields_few_shapes():
    sizes = [bucket_rows(m) for m in range(1, 2049)]
    assert all(p >= m for m, p in zip(range(1, 2049), sizes))
    assert all(p - m < 8 for m, p in zip(range(1, 129), sizes))            # 8-row steps below 128
    assert all((p - m) / m <= 1 / 16 for m, p in zip(range(128, 2049), sizes[127:]))
    assert len(set(sizes)) <= 90                                           # GEMM shapes a 2048-token budget can create


def test_linear_layers_answer_per_row_whatever_the_padding():
    torch.manual_seed(0)
    weight, bias = torch.randn(48, 32), torch.randn(48)
    for rows in (1, 7, 129, 300):
        x = torch.randn(rows, 32)
        reference = F.linear(x, weight, bias)
        assert torch.allclose(Linear(weight, bias)(x), reference, atol=1e-5)
        assert torch.allclose(Bf16Linear(weight, bias)(x), reference, atol=0.1, rtol=0.02)
        assert torch.nn.functional.cosine_similarity(Int8Linear(weight, bias)(x), reference).min() > 0.99
    x3 = torch.randn(3, 43, 32)                                            # heads may pass [batch, len, features]
    assert torch.allclose(Linear(weight, bias)(x3), F.linear(x3, weight, bias), atol=1e-5)
    assert Int8Linear(weight, bias)(x3).shape == (3, 43, 48)
