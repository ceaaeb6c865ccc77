"""Rotary position embeddings (RoPE) on packed tokens, shared by ModernBERT and the Qwen decoders.

Each token's position inside its own sequence comes from `PackedBatch.positions()`, so packing needs
no position bookkeeping beyond that. cos/sin are computed once per batch and reused by every layer.
"""

from __future__ import annotations

import torch

from sie.errors import ModelLoadFailed


def inverse_frequencies(config, head_dim: int, rope: dict, layer_type: str | None = None) -> tuple[torch.Tensor, float]:
    """(inv_freq [head_dim/2], attention_scaling) for one `rope_parameters` entry of a config.

    'default' RoPE is computed here; scaled variants (linear, yarn, llama3, ...) use the transformers
    functions so their frequency tables stay identical to the reference.
    """
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type == "default":
        base = float(rope["rope_theta"])
        return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim)), 1.0
    if rope_type == "dynamic":  # frequencies depend on the sequence length: not supported on packed batches
        raise ModelLoadFailed("rope_parameters.rope_type: 'dynamic' RoPE is not supported; "
                              "supported: default, linear, yarn, llama3, longrope")
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    try:
        init = ROPE_INIT_FUNCTIONS[rope_type]
    except KeyError:
        raise ModelLoadFailed(f"rope_parameters.rope_type: unknown RoPE type '{rope_type}'") from None
    inv_freq, scaling = init(config, None) if layer_type is None else init(config, None, layer_type=layer_type)
    return inv_freq.float(), float(scaling)


class Rotary:
    """cos/sin tables for the positions of one packed batch; `apply` rotates q or k ([T, H, D])."""

    def __init__(self, inv_freq: torch.Tensor, scaling: float, positions: torch.Tensor) -> None:
        freqs = positions.float()[:, None] * inv_freq.to(positions.device)[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos = (emb.cos() * scaling)[:, None, :]   # [T, 1, D]
        self.sin = (emb.sin() * scaling)[:, None, :]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        # In fp32 whatever the compute dtype (as the reference does for ModernBERT): bf16 positions
        # lose precision quickly beyond a few hundred tokens.
        xf = x.float()
        half = xf.shape[-1] // 2
        rotated = torch.cat((-xf[..., half:], xf[..., :half]), dim=-1)
        return (xf * self.cos + rotated * self.sin).to(x.dtype)
