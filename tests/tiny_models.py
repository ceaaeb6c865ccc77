"""Tiny random-weight models of each architecture, saved like a Hugging Face checkpoint.

They reuse the MiniLM tokenizer (vocab 30522), so every config keeps that vocabulary size and points
its special ids at MiniLM's: [PAD]=0, [CLS]=101, [SEP]=102, [MASK]=103.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
PAD, CLS, SEP, MASK = 0, 101, 102, 103
# kind → the transformers head class `head=` builds on top of the base model.
HEADS = {
    None: "AutoModel",
    "masked-lm": "AutoModelForMaskedLM",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "causal-lm": "AutoModelForCausalLM",
}


# The MiniLM-sized skeleton the BERT-like presets share.
_COMMON = dict(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
               max_position_embeddings=80, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
# A tiny model is a transformers config class, named, and its arguments. These presets are the ones many tests
# build by name; a family's own test may pass its own (class, arguments) pair to `build` and add nothing here.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "bert": ("BertConfig", {**_COMMON, "type_vocab_size": 2, "pad_token_id": PAD}),
    "roberta": ("RobertaConfig", {**_COMMON, "type_vocab_size": 1, "pad_token_id": 1, "max_position_embeddings": 82}),
    "xlm-roberta": ("XLMRobertaConfig", {**_COMMON, "type_vocab_size": 1, "pad_token_id": 1,
                                         "max_position_embeddings": 82}),
    "distilbert": ("DistilBertConfig", dict(vocab_size=30522, dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                                            max_position_embeddings=80, dropout=0.0, attention_dropout=0.0,
                                            pad_token_id=PAD)),
    "deberta-v2": ("DebertaV2Config", {**_COMMON, "type_vocab_size": 0, "pad_token_id": PAD, "relative_attention": True,
                                       "position_buckets": 16, "max_relative_positions": -1,
                                       "norm_rel_ebd": "layer_norm", "share_att_key": True,
                                       "pos_att_type": ["p2c", "c2p"], "position_biased_input": False,
                                       "max_position_embeddings": 128}),
    # Three layers: global, local, local. local_attention 16 = a window of ±8 tokens, far shorter than the test
    # sequences, so the local mask is exercised.
    "modernbert": ("ModernBertConfig", dict(vocab_size=30522, hidden_size=64, intermediate_size=96,
                                            num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=160,
                                            local_attention=16, global_attn_every_n_layers=3, pad_token_id=PAD,
                                            bos_token_id=CLS, cls_token_id=CLS, eos_token_id=SEP,
                                            sep_token_id=SEP)),
    # GQA 4:2 (Qwen3) and 4:1 (Qwen2); Qwen2 also slides a window of 8 over its second layer.
    "qwen3": ("Qwen3Config", dict(vocab_size=30522, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=160,
                                  pad_token_id=PAD, bos_token_id=CLS, eos_token_id=SEP, tie_word_embeddings=True,
                                  rope_theta=10000.0, head_dim=16)),
    "qwen2": ("Qwen2Config", dict(vocab_size=30522, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=160,
                                  pad_token_id=PAD, bos_token_id=CLS, eos_token_id=SEP, tie_word_embeddings=True,
                                  rope_theta=10000.0, use_sliding_window=True, sliding_window=8,
                                  max_window_layers=1)),
}
#: A preset's name, or a (transformers config class name, its arguments) pair.
Spec = str | tuple[str, dict[str, Any]]


def name_of(spec: Spec) -> str:
    return spec if isinstance(spec, str) else spec[0]


def config(spec: Spec, **overrides):
    """The transformers config of `spec`; `overrides` are set on it after construction, as attributes."""
    import transformers

    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"no tiny preset '{spec}' (presets: {', '.join(PRESETS)}); "
                             "or pass (config class, arguments)")
        spec = PRESETS[spec]
    class_name, arguments = spec
    cfg = getattr(transformers, class_name)(**arguments)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def build(spec: Spec, folder: Path, tokenizer_from: Path, seed: int = 0, head: str | None = None,
          **overrides) -> Path:
    """A random-weight checkpoint of `spec` (with the `head` on top) in `folder`, with the MiniLM tokenizer."""
    import transformers

    torch.manual_seed(seed)
    model = getattr(transformers, HEADS[head]).from_config(config(spec, **overrides))
    # Random init leaves norms at identity and biases at zero; perturb them so parity covers them.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder, safe_serialization=True)
    for f in TOKENIZER_FILES:
        if (tokenizer_from / f).exists():
            shutil.copy(tokenizer_from / f, folder / f)
    return folder


GLINER_TOKENS = ("[FLERT]", "<<ENT>>", "<<SEP>>")  # added in this order, as GLiNER does


def build_gliner(folder: Path, tokenizer_from: Path, seed: int = 0, *, span_mode: str = "markerV0",
                 hidden_size: int = 48, max_width: int = 4, max_len: int = 40) -> Path:
    """A GLiNER checkpoint in GLiNER's own layout (gliner_config.json + pytorch_model.bin + tokenizer):
    a tiny DeBERTa-v2 backbone with the three GLiNER tokens added, a projection to `hidden_size`, the
    bidirectional LSTM, the span-marker layers and the prompt MLP, all random."""
    import json

    from tokenizers import AddedToken, Tokenizer
    from transformers import DebertaV2Model

    torch.manual_seed(seed)
    enc_config = config("deberta-v2", vocab_size=30522 + len(GLINER_TOKENS))
    backbone = DebertaV2Model(enc_config)
    state = {f"token_rep_layer.bert_layer.model.{k}": v for k, v in backbone.state_dict().items()}
    h, d = hidden_size, enc_config.hidden_size

    def linear(name: str, n_in: int, n_out: int) -> None:
        state[f"{name}.weight"] = torch.randn(n_out, n_in) * n_in ** -0.5
        state[f"{name}.bias"] = torch.randn(n_out) * 0.1

    def mlp(name: str, n_in: int, n_out: int, wide: int) -> None:
        linear(f"{name}.0", n_in, wide)
        linear(f"{name}.3", wide, n_out)

    linear("token_rep_layer.projection", d, h)
    lstm = torch.nn.LSTM(h, h // 2, bidirectional=True, batch_first=True)
    state |= {f"rnn.lstm.{k}": v for k, v in lstm.state_dict().items()}
    span = "span_rep_layer.span_rep_layer."
    if span_mode == "markerV0":
        mlp(span + "project_start", h, h, 4 * h)
        mlp(span + "project_end", h, h, 4 * h)
        mlp(span + "out_project", 2 * h, h, 4 * h)
    else:  # "marker"
        mlp(span + "project_start", h, h, 2 * h)
        mlp(span + "project_end", h, h, 2 * h)
        linear(span + "out_project", 2 * h, h)
    mlp("prompt_rep_layer", h, h, 4 * h)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in state.items()}, folder / "pytorch_model.bin")

    tok = Tokenizer.from_file(str(tokenizer_from / "tokenizer.json"))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in GLINER_TOKENS])
    tok.save(str(folder / "tokenizer.json"))
    for f in ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(tokenizer_from / f, folder / f)
    encoder = enc_config.to_dict()
    (folder / "gliner_config.json").write_text(json.dumps({
        "model_name": "tiny-deberta", "encoder_config": encoder, "hidden_size": h, "max_width": max_width,
        "max_len": max_len, "span_mode": span_mode, "dropout": 0.0, "subtoken_pooling": "first",
        "class_token_index": tok.token_to_id("<<ENT>>"), "vocab_size": enc_config.vocab_size,
        "ent_token": "<<ENT>>", "sep_token": "<<SEP>>", "embed_ent_token": True, "num_rnn_layers": 1,
        "fuse_layers": False, "post_fusion_schema": "", "words_splitter_type": "whitespace", "model_type": "gliner",
    }, indent=1))
    return folder


def with_tensors(source: Path, folder: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """A copy of checkpoint `source` with extra tensors in its model.safetensors (e.g. ColBERT's linear)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, folder)
    state = load_file(str(folder / "model.safetensors"))
    save_file({**state, **tensors}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
