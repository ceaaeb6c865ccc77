"""Linear layers as plain weights: fp (any dtype), bf16-in-fp32 and dynamic int8 for CPU.

Runners hold these instead of nn.Linear so a whole model can switch precision by swapping objects,
without module surgery. Each may carry the activation that follows it.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)
Activation = Callable[[torch.Tensor], torch.Tensor]


def bucket_rows(m: int) -> int:
    """The row count a GEMM runs at: `m` rounded up to a multiple of 8 below 256, then to one of 16 steps
    per power of two: at most 7 padding rows or 6.25%, and ~80 distinct sizes up to a 2048-token batch.

    Packed batches have any token count, and oneDNN JIT-compiles and caches a primitive per GEMM shape
    (1024 of them by default). Measured here on random batches of 1-64 texts: unbucketed, RSS grew from
    660 to 1380 MiB in a minute and kept growing; bucketed it settled near 870 MiB, and throughput did
    not drop (a few percent higher in our runs: every shape is compiled once)."""
    step = 1 << max(3, m.bit_length() - 5)
    return -(-m // step) * step


def bucketed_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """`x` as [rows, features], zero-padded to `bucket_rows(rows)`; and the real row count."""
    rows = x.reshape(-1, x.shape[-1])
    m = rows.shape[0]
    pad = bucket_rows(m) - m
    return (F.pad(rows, (0, 0, 0, pad)) if pad else rows), m


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear at a bucketed row count (see `bucket_rows`); padding rows are computed and dropped."""
    rows, m = bucketed_rows(x)
    return F.linear(rows, weight, bias)[:m].view(*x.shape[:-1], -1)


class Linear:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, activation: Activation | None = None) -> None:
        self.weight = weight.contiguous()
        self.bias = bias
        self.activation = activation

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = linear(x, self.weight, self.bias)
        return y if self.activation is None else self.activation(y)


class Bf16Linear(Linear):
    """bf16 GEMM inside an fp32 model: inputs rounded to bf16, fp32 accumulation, fp32 out.

    Where the CPU has native bf16 dot products (AVX512-BF16, AMX) this GEMM runs ~4.7x the fp32 rate
    here; the residual stream, layer norms and softmax stay fp32, which is what keeps fidelity.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, activation: Activation | None = None) -> None:
        super().__init__(weight.to(torch.bfloat16), None if bias is None else bias.to(torch.bfloat16), activation)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = linear(x.to(torch.bfloat16), self.weight, self.bias)
        return (y if self.activation is None else self.activation(y)).to(x.dtype)


class Int8Linear:
    """int8 weights (per output channel) × int8 activations (per token, asymmetric), int32 accumulation.

    The int8 GEMM (`torch._int_mm`, VNNI on x86) runs ~10x the fp32 GEMM rate on the machines we
    measured. Fidelity comes from three choices: SmoothQuant (activation outlier channels moved into
    the weights by `input_absmax ** alpha / weight_absmax ** (1 - alpha)`), a scale per token, and an
    asymmetric range per token (GELU outputs are almost all >= -0.17: a symmetric range would waste
    half the codes). The quantize and dequantize steps are fused by torch.compile when
    it works here; eager they cost more than the GEMM itself.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, input_absmax: torch.Tensor | None = None,
                 alpha: float = 0.5, activation: Activation | None = None) -> None:
        w = weight.float()
        self.activation = activation
        self.inv_smooth = torch.ones(w.shape[1])
        if input_absmax is not None:
            smooth = (input_absmax.float().clamp(min=1e-5) ** alpha
                      / w.abs().amax(dim=0).clamp(min=1e-5) ** (1 - alpha)).clamp(min=1e-5)
            w = w * smooth[None, :]
            self.inv_smooth = 1.0 / smooth
        self.w_scale = (w.abs().amax(dim=1).clamp(min=1e-8) / 127.0)          # [N]
        w_int8 = torch.round(w / self.w_scale[:, None]).to(torch.int8)
        self.w_int8_t = w_int8.t().contiguous()                                 # [K, N]
        # x ≈ scale * (q + 128) + lo, so x @ W.T = scale * (q @ Wq.T) * w_scale + (128 * scale + lo) * w_sum
        self.w_sum = (w_int8.float() * self.w_scale[:, None]).sum(dim=1)       # [N]
        self.bias = torch.zeros(w.shape[0]) if bias is None else bias.float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        quantize, dequantize = _int8_kernels()
        rows, m = bucketed_rows(x)
        q, scale, offset = quantize(rows, self.inv_smooth)
        acc = torch._int_mm(q, self.w_int8_t)                                  # [M, N] int32
        y = dequantize(acc, scale, offset, self.w_scale, self.w_sum, self.bias)[:m]
        if self.activation is not None:
            y = self.activation(y)
        return y.view(*x.shape[:-1], -1)


def _quantize_per_token(x: torch.Tensor, inv_smooth: torch.Tensor):
    x = x.float() * inv_smooth
    lo = x.amin(dim=1, keepdim=True)
    scale = ((x.amax(dim=1, keepdim=True) - lo) / 255.0).clamp(min=1e-8)
    q = (torch.round((x - lo) / scale) - 128.0).to(torch.int8)
    return q, scale, 128.0 * scale + lo


def _dequantize(acc: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, w_scale: torch.Tensor,
                w_sum: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return acc.float() * scale * w_scale + offset * w_sum + bias


@functools.cache
def _int8_kernels():
    """Fused (compiled) quantize/dequantize when torch.compile works here, else the eager functions.
    The activation stays outside: inductor's fused erf-GELU was slower than eager GELU (measured here)."""
    eager = (_quantize_per_token, _dequantize)
    if os.environ.get("SIE_COMPILE", "1").lower() in ("0", "false", "off", "no"):
        return eager
    try:
        quantize = torch.compile(_quantize_per_token, dynamic=True)
        dequantize = torch.compile(_dequantize, dynamic=True)
        _q, scale, offset = quantize(torch.randn(5, 8), torch.ones(8))
        acc = torch._int_mm(torch.zeros(17, 8, dtype=torch.int8), torch.zeros(8, 8, dtype=torch.int8))[:5]
        dequantize(acc, scale, offset, torch.ones(8), torch.ones(8), torch.zeros(8))
        return quantize, dequantize
    except Exception as e:  # no C++ compiler, unsupported platform: correct but slower
        log.warning("torch.compile unavailable (%s); int8 runs with eager quantization", e)
        return eager
