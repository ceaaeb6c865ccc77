"""Linear layers as plain weights: fp (any dtype) and dynamic int8 for CPU.

Runners hold these instead of nn.Linear so a whole model can switch to int8 by swapping objects,
without module surgery.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Linear:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight = weight.contiguous()
        self.bias = bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    @property
    def nbytes(self) -> int:
        return self.weight.nbytes + (self.bias.nbytes if self.bias is not None else 0)


class Bf16Linear:
    """bf16 GEMM inside an fp32 model: inputs rounded to bf16, fp32 accumulation, fp32 out.

    Where the CPU has native bf16 dot products (AVX512-BF16, AMX) this GEMM runs ~4.7x the fp32 rate
    here; the residual stream, layer norms and softmax stay fp32, which is what keeps fidelity.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight = weight.to(torch.bfloat16).contiguous()
        self.bias = None if bias is None else bias.to(torch.bfloat16)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(torch.bfloat16), self.weight, self.bias).to(x.dtype)

    @property
    def nbytes(self) -> int:
        return self.weight.nbytes + (self.bias.nbytes if self.bias is not None else 0)


class Int8Linear:
    """Weights int8 per output channel; activations quantized per token at run time (symmetric).

    The int8 GEMM (`torch._int_mm`, VNNI on x86) runs ~10x the fp32 GEMM rate on the machines we
    measured. Per-token activation scales plus SmoothQuant (activation outlier channels moved into
    the weights by `input_absmax ** alpha / weight_absmax ** (1 - alpha)`) keep fidelity.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None,
                 input_absmax: torch.Tensor | None = None, alpha: float = 0.5) -> None:
        w = weight.float()
        self.inv_smooth = None
        if input_absmax is not None:
            smooth = (input_absmax.float().clamp(min=1e-5) ** alpha
                      / w.abs().amax(dim=0).clamp(min=1e-5) ** (1 - alpha)).clamp(min=1e-5)
            w = w * smooth[None, :]
            self.inv_smooth = 1.0 / smooth
        self.w_scale = (w.abs().amax(dim=1).clamp(min=1e-8) / 127.0)          # [N]
        self.w_int8_t = torch.round(w / self.w_scale[:, None]).to(torch.int8).t().contiguous()  # [K, N]
        self.bias = None if bias is None else bias.float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).float()
        if self.inv_smooth is not None:
            x2 = x2 * self.inv_smooth
        x_scale = x2.abs().amax(dim=1, keepdim=True).clamp_(min=1e-8).div_(127.0)   # [M, 1]
        xq = torch.round(x2 / x_scale).to(torch.int8)
        acc = torch._int_mm(xq, self.w_int8_t)                                       # [M, N] int32
        y = acc.float().mul_(x_scale).mul_(self.w_scale)
        if self.bias is not None:
            y.add_(self.bias)
        return y.view(*shape[:-1], -1)

    @property
    def nbytes(self) -> int:
        return self.w_int8_t.nbytes + self.w_scale.nbytes + (self.bias.nbytes if self.bias is not None else 0)
