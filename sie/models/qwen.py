"""Qwen2 and Qwen3 decoders on packed sequences, used as embedders and rerankers (no KV cache, no generation).

One family, differences as data: Qwen2 has biases on q/k/v; Qwen3 has per-head RMSNorm on q and k
(and `attention_bias` from its config). Both: RMSNorm pre-norm, rotary positions, grouped-query
attention (fewer k/v heads than q heads), SwiGLU, causal mask, optional sliding-window layers
(`layer_types`; a decoder's window W lets a query see keys with q - k < W).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from sie.errors import ModelLoadFailed
from sie.models.activations import activation
from sie.models.attention import VarlenAttention
from sie.models.linear import Linear
from sie.models.norms import rms_norm
from sie.models.rotary import Rotary, inverse_frequencies
from sie.models.runner import PackedBatch, Runner, between_layers, swappable
from sie.models.weights import build_runner, strip_prefix

# Card `architecture` → runner class, read by sie/models/__init__.py without importing this module.
ARCHITECTURES = {"qwen2": "QwenRunner", "qwen3": "QwenRunner"}
MODEL_TYPES = ("qwen2", "qwen3")


@dataclass
class _Layer:
    input_norm: torch.Tensor
    qkv: Linear = field(metadata=swappable("attention"))      # q, k, v projections fused: [H*D + 2*Hkv*D]
    q_norm: torch.Tensor | None                               # Qwen3: RMSNorm over each head's D dims
    k_norm: torch.Tensor | None
    attn_out: Linear = field(metadata=swappable("attention_out"))
    post_norm: torch.Tensor
    gate_up: Linear = field(metadata=swappable("ffn"))        # gate and up projections fused: [2 * intermediate]
    down: Linear = field(metadata=swappable("ffn"))
    sliding: bool


class QwenRunner(Runner):
    def __init__(self, config, tensors: dict[str, torch.Tensor], *, device: torch.device,
                 dtype: torch.dtype) -> None:
        if config.model_type not in MODEL_TYPES:
            raise ModelLoadFailed(f"QwenRunner cannot run model_type '{config.model_type}'; "
                                  f"it runs {', '.join(MODEL_TYPES)}")
        self.config = config
        self.device, self.dtype = device, dtype
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads or config.num_attention_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.eps = config.rms_norm_eps
        self.max_positions = config.max_position_embeddings
        self.sliding_window = getattr(config, "sliding_window", None)
        self.act = activation(config.hidden_act)
        self.rope = inverse_frequencies(config, self.head_dim, config.rope_parameters)

        w = {k: v.to(device=device, dtype=dtype) for k, v in strip_prefix(tensors, "embed_tokens.weight").items()}
        self.word_emb = w["embed_tokens.weight"]
        self.final_norm = w["norm.weight"]
        layer_types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
        self.layers: list[_Layer] = []
        for i in range(config.num_hidden_layers):
            p = f"layers.{i}."
            names = [p + f"self_attn.{n}_proj" for n in "qkv"]
            biases = [w.get(n + ".bias") for n in names]
            self.layers.append(_Layer(
                input_norm=w[p + "input_layernorm.weight"],
                qkv=Linear(torch.cat([w[n + ".weight"] for n in names]),
                           None if biases[0] is None else torch.cat(biases)),
                q_norm=w.get(p + "self_attn.q_norm.weight"),
                k_norm=w.get(p + "self_attn.k_norm.weight"),
                attn_out=Linear(w[p + "self_attn.o_proj.weight"], w.get(p + "self_attn.o_proj.bias")),
                post_norm=w[p + "post_attention_layernorm.weight"],
                gate_up=Linear(torch.cat([w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"]]), None),
                down=Linear(w[p + "mlp.down_proj.weight"], None),
                sliding=layer_types[i] == "sliding_attention",
            ))
        if any(l.sliding for l in self.layers) and not self.sliding_window:
            raise ModelLoadFailed("config: layer_types has sliding_attention layers but sliding_window is unset")

    @classmethod
    def load(cls, path: Path, *, device: torch.device, dtype: torch.dtype) -> QwenRunner:
        return build_runner(cls, path, device=device, dtype=dtype)

    @torch.inference_mode()
    def forward(self, batch: PackedBatch) -> torch.Tensor:
        h = self.word_emb.index_select(0, batch.input_ids)
        rotary = Rotary(*self.rope, batch.positions())
        attention = {False: VarlenAttention(batch, causal=True, compute_dtype=self.attention_dtype)}
        if any(l.sliding for l in self.layers):
            attention[True] = VarlenAttention(batch, causal=True, window=self.sliding_window - 1,
                                              compute_dtype=self.attention_dtype)
        T, H, Hkv, D = batch.num_tokens, self.num_heads, self.num_kv_heads, self.head_dim
        for layer in self.layers:
            between_layers()
            qkv = layer.qkv(rms_norm(h, layer.input_norm, self.eps))
            q = qkv[:, : H * D].view(T, H, D)
            k = qkv[:, H * D: (H + Hkv) * D].view(T, Hkv, D)
            v = qkv[:, (H + Hkv) * D:].view(T, Hkv, D)
            if layer.q_norm is not None:
                q, k = rms_norm(q, layer.q_norm, self.eps), rms_norm(k, layer.k_norm, self.eps)
            a = attention[layer.sliding](rotary.apply(q), rotary.apply(k), v.contiguous())
            h = h + layer.attn_out(a.reshape(T, H * D))
            between_layers()
            gate, up = layer.gate_up(rms_norm(h, layer.post_norm, self.eps)).chunk(2, dim=-1)
            h = h + layer.down(self.act(gate) * up)
        return rms_norm(h, self.final_norm, self.eps)
