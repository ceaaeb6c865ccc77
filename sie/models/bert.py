"""BERT, RoBERTa and XLM-RoBERTa encoders on packed sequences (one family: post-norm, learned positions).

Differences inside the family are data: RoBERTa/XLM-R count positions from padding_idx + 1 and
have a one-row token-type table. Q, K and V are fused into one projection at load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from sie.errors import ModelLoadFailed
from sie.models.activations import activation
from sie.models.attention import VarlenAttention
from sie.models.linear import Linear
from sie.models.runner import PackedBatch, Runner, between_layers, swappable
from sie.models.weights import build_runner, strip_prefix

# Card `architecture` → runner class, read by sie/models/__init__.py without importing this module.
ARCHITECTURES = {"bert": "BertRunner", "roberta": "BertRunner", "xlm-roberta": "BertRunner"}
MODEL_TYPES = {"bert": 0, "roberta": 1, "xlm-roberta": 1, "camembert": 1}  # value: positions start after pad


@dataclass
class _Layer:
    qkv: Linear = field(metadata=swappable("attention"))
    attn_out: Linear = field(metadata=swappable("attention_out"))
    ln1: tuple[torch.Tensor, torch.Tensor]
    ffn_in: Linear = field(metadata=swappable("ffn"))
    ffn_out: Linear = field(metadata=swappable("ffn"))
    ln2: tuple[torch.Tensor, torch.Tensor]


def _norm(w: dict[str, torch.Tensor], name: str) -> tuple[torch.Tensor, torch.Tensor]:
    return w[f"{name}.weight"], w[f"{name}.bias"]  # legacy gamma/beta names: see sie.models.checkpoint_names


def _linear(w: dict[str, torch.Tensor], name: str, activation=None) -> Linear:
    return Linear(w[f"{name}.weight"], w.get(f"{name}.bias"), activation)


class BertRunner(Runner):
    def __init__(self, config, tensors: dict[str, torch.Tensor], *, device: torch.device,
                 dtype: torch.dtype) -> None:
        if config.model_type not in MODEL_TYPES:
            raise ModelLoadFailed(f"BertRunner cannot run model_type '{config.model_type}'; "
                                  f"it runs {', '.join(sorted(MODEL_TYPES))}")
        self.config = config
        self.device, self.dtype = device, dtype
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.eps = config.layer_norm_eps
        self.position_offset = (config.pad_token_id + 1) if MODEL_TYPES[config.model_type] else 0
        self.max_positions = config.max_position_embeddings - self.position_offset

        w = {k: v.to(device=device, dtype=dtype) for k, v in
             strip_prefix(tensors, "embeddings.word_embeddings.weight").items()}
        self.word_emb = w["embeddings.word_embeddings.weight"]
        positions = w["embeddings.position_embeddings.weight"]
        self.type_emb = w.get("embeddings.token_type_embeddings.weight")
        # Most inputs have token type 0: fold that row into the position table once (the position table
        # itself is then never read, and not kept).
        self.pos_type0 = positions if self.type_emb is None else positions + self.type_emb[0]
        self.emb_ln = _norm(w, "embeddings.LayerNorm")
        self.layers: list[_Layer] = []
        for i in range(config.num_hidden_layers):
            p = f"encoder.layer.{i}."
            qkv_w = torch.cat([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")])
            qkv_b = torch.cat([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append(_Layer(
                qkv=Linear(qkv_w, qkv_b),
                attn_out=_linear(w, p + "attention.output.dense"),
                ln1=_norm(w, p + "attention.output.LayerNorm"),
                ffn_in=_linear(w, p + "intermediate.dense", activation(config.hidden_act)),
                ffn_out=_linear(w, p + "output.dense"),
                ln2=_norm(w, p + "output.LayerNorm"),
            ))

    @classmethod
    def load(cls, path: Path, *, device: torch.device, dtype: torch.dtype) -> BertRunner:
        return build_runner(cls, path, device=device, dtype=dtype)

    def embed(self, batch: PackedBatch) -> torch.Tensor:
        positions = batch.positions(self.position_offset)
        h = self.word_emb.index_select(0, batch.input_ids)
        h = h + self.pos_type0.index_select(0, positions)
        if batch.token_type_ids is not None and self.type_emb is not None:
            h = h + (self.type_emb.index_select(0, batch.token_type_ids) - self.type_emb[0])
        return F.layer_norm(h, (self.hidden_size,), *self.emb_ln, self.eps)

    @torch.inference_mode()
    def forward(self, batch: PackedBatch) -> torch.Tensor:
        h = self.embed(batch)
        attention = VarlenAttention(batch, compute_dtype=self.attention_dtype)
        T, H, D = batch.num_tokens, self.num_heads, self.head_dim
        for layer in self.layers:
            between_layers()
            qkv = layer.qkv(h).view(T, 3, H, D)
            a = attention(qkv[:, 0], qkv[:, 1], qkv[:, 2]).reshape(T, self.hidden_size)
            h = F.layer_norm(layer.attn_out(a) + h, (self.hidden_size,), *layer.ln1, self.eps)
            between_layers()
            h = F.layer_norm(layer.ffn_out(layer.ffn_in(h)) + h, (self.hidden_size,), *layer.ln2, self.eps)
        return h
