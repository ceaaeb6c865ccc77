"""`attention_path`: run a test once on the SDPA path and once on the flash-attn path, the latter with
flash_reference.varlen (a pure-torch flash_attn_varlen_func) standing in for the CUDA-only kernel."""

from __future__ import annotations

import pytest
import torch
from flash_reference import varlen

from sie.models import attention


@pytest.fixture(params=["sdpa", "flash"])
def attention_path(request, monkeypatch):
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return varlen(*args, **kwargs)

    kernel = None
    if request.param == "flash":
        kernel = attention.FlashKernel(counted, frozenset({"cpu"}),
                                       frozenset({torch.float32, torch.float16, torch.bfloat16}))
    monkeypatch.setattr(attention, "FLASH", kernel)
    yield request.param
    if request.param == "flash":
        assert calls, "the test never reached the flash path"
