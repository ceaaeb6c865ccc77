"""Tiny random-weight models of each architecture, saved like a Hugging Face checkpoint.

They reuse the MiniLM tokenizer (vocab 30522), so every config keeps that vocabulary size.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def _config(kind: str, **overrides):
    from transformers import BertConfig, XLMRobertaConfig

    common = dict(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=128, max_position_embeddings=80, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    if kind == "bert":
        cfg = BertConfig(**{**common, "type_vocab_size": 2, "pad_token_id": 0})
    elif kind == "xlm-roberta":
        cfg = XLMRobertaConfig(**{**common, "type_vocab_size": 1, "pad_token_id": 1,
                                  "max_position_embeddings": 82})
    else:
        raise ValueError(f"no tiny builder for '{kind}'")
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def build(kind: str, folder: Path, tokenizer_from: Path, seed: int = 0, **overrides) -> Path:
    from transformers import AutoModel

    torch.manual_seed(seed)
    model = AutoModel.from_config(_config(kind, **overrides))
    # Random init leaves LayerNorm at identity; perturb it so parity covers the affine parameters.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder, safe_serialization=True)
    for f in TOKENIZER_FILES:
        if (tokenizer_from / f).exists():
            shutil.copy(tokenizer_from / f, folder / f)
    return folder
