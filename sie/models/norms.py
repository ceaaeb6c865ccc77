"""Normalization layers as plain functions over weights (runners keep weights, not nn.Modules)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm as the Qwen/Llama reference computes it: statistics in fp32, scale in the input dtype."""
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(x.dtype)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    """LayerNorm whose bias may be absent (ModernBERT has norm_bias=False)."""
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)
