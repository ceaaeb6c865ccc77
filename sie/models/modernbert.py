"""ModernBERT encoder on packed sequences: pre-norm, rotary positions, GeGLU, no biases, no token types,
and layers that alternate between global attention and a local sliding window.

Which layers are local comes from `config.layer_types` (older configs: every
`global_attn_every_n_layers`-th layer is global; transformers' config class derives the list). A local
layer sees keys within local_attention // 2 tokens on each side (HF: |q - k| <= sliding_window), and
uses its own RoPE base (local_rope_theta, 10k) while global layers use global_rope_theta (160k).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from sie.errors import ModelLoadFailed
from sie.models.activations import activation
from sie.models.attention import VarlenAttention
from sie.models.linear import Linear
from sie.models.norms import layer_norm
from sie.models.rotary import Rotary, inverse_frequencies
from sie.models.runner import PackedBatch, Runner, between_layers, swappable
from sie.models.weights import build_runner, strip_prefix

# Card `architecture` → runner class, read by sie/models/__init__.py without importing this module.
ARCHITECTURES = {"modernbert": "ModernBertRunner"}

Norm = tuple[torch.Tensor, torch.Tensor | None]


@dataclass
class _Layer:
    attn_norm: Norm | None        # None on layer 0: the embedding norm already normalized its input
    qkv: Linear = field(metadata=swappable("attention"))
    attn_out: Linear = field(metadata=swappable("attention_out"))
    mlp_norm: Norm
    ffn_in: Linear = field(metadata=swappable("ffn"))  # [2 * intermediate]: GeGLU input half, then gate half
    ffn_out: Linear = field(metadata=swappable("ffn"))
    local: bool


def _norm(w: dict[str, torch.Tensor], name: str) -> Norm:
    return w[f"{name}.weight"], w.get(f"{name}.bias")


def _linear(w: dict[str, torch.Tensor], name: str) -> Linear:
    return Linear(w[f"{name}.weight"], w.get(f"{name}.bias"))


class ModernBertRunner(Runner):
    def __init__(self, config, tensors: dict[str, torch.Tensor], *, device: torch.device,
                 dtype: torch.dtype) -> None:
        if config.model_type != "modernbert":
            raise ModelLoadFailed(f"ModernBertRunner cannot run model_type '{config.model_type}'")
        self.config = config
        self.device, self.dtype = device, dtype
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.eps = config.norm_eps
        self.max_positions = config.max_position_embeddings
        self.window = config.local_attention // 2
        self.act = activation(config.hidden_activation)
        self.rope = {kind: inverse_frequencies(config, self.head_dim, config.rope_parameters[kind], kind)
                     for kind in ("full_attention", "sliding_attention")}

        w = {k: v.to(device=device, dtype=dtype) for k, v in
             strip_prefix(tensors, "embeddings.tok_embeddings.weight").items()}
        self.word_emb = w["embeddings.tok_embeddings.weight"]
        self.emb_norm = _norm(w, "embeddings.norm")
        self.final_norm = _norm(w, "final_norm")
        self.layers: list[_Layer] = []
        for i in range(config.num_hidden_layers):
            p = f"layers.{i}."
            self.layers.append(_Layer(
                attn_norm=_norm(w, p + "attn_norm") if f"{p}attn_norm.weight" in w else None,
                qkv=_linear(w, p + "attn.Wqkv"),
                attn_out=_linear(w, p + "attn.Wo"),
                mlp_norm=_norm(w, p + "mlp_norm"),
                ffn_in=_linear(w, p + "mlp.Wi"),
                ffn_out=_linear(w, p + "mlp.Wo"),
                local=config.layer_types[i] == "sliding_attention",
            ))

    @classmethod
    def load(cls, path: Path, *, device: torch.device, dtype: torch.dtype) -> ModernBertRunner:
        return build_runner(cls, path, device=device, dtype=dtype)

    def embed(self, batch: PackedBatch) -> torch.Tensor:
        return layer_norm(self.word_emb.index_select(0, batch.input_ids), *self.emb_norm, self.eps)

    @torch.inference_mode()
    def forward(self, batch: PackedBatch) -> torch.Tensor:
        h = self.embed(batch)
        positions = batch.positions()
        rotary = {kind: Rotary(*self.rope[kind], positions) for kind in self.rope}
        attention = {
            False: VarlenAttention(batch, compute_dtype=self.attention_dtype),
            True: VarlenAttention(batch, window=self.window, compute_dtype=self.attention_dtype),
        }
        T, H, D = batch.num_tokens, self.num_heads, self.head_dim
        for layer in self.layers:
            between_layers()
            x = h if layer.attn_norm is None else layer_norm(h, *layer.attn_norm, self.eps)
            qkv = layer.qkv(x).view(T, 3, H, D)
            rope = rotary["sliding_attention" if layer.local else "full_attention"]
            a = attention[layer.local](rope.apply(qkv[:, 0]), rope.apply(qkv[:, 1]), qkv[:, 2])
            h = h + layer.attn_out(a.reshape(T, self.hidden_size))
            between_layers()
            up, gate = layer.ffn_in(layer_norm(h, *layer.mlp_norm, self.eps)).chunk(2, dim=-1)
            h = h + layer.ffn_out(self.act(up) * gate)
        return layer_norm(h, *self.final_norm, self.eps)
