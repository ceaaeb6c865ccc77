"""The heads a card asks for, loaded next to its runner: what turns token states into sparse vectors,
multivectors, relevance logits, tag logits or span scores.

`HEADS` is the registry (head kind → module, class), like `RUNNERS`: every entry has a parity test
(tests/sie/models/test_registry.py enforces it). Dense pooling needs no weights (sie.models.pooling).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer

from sie.catalog.card import ModelCard
from sie.errors import ModelLoadFailed
from sie.models.runner import Runner

HEADS: dict[str, tuple[str, str]] = {
    "splade": ("sie.models.splade", "SpladeHead"),
    "token-weights": ("sie.models.token_weights", "TokenWeightsHead"),
    "colbert": ("sie.models.colbert", "ColbertHead"),
    "sequence-classification": ("sie.models.classifier", "SequenceClassifierHead"),
    "yes-no": ("sie.models.yes_no", "YesNoHead"),
    "token-classification": ("sie.models.token_classifier", "TokenClassifierHead"),
    "gliner": ("sie.models.gliner", "GlinerSpanHead"),
}


def head_class(kind: str) -> type:
    module, cls = HEADS[kind]
    return getattr(importlib.import_module(module), cls)


def required_heads(card: ModelCard) -> list[str]:
    """The HEADS kinds a card needs (what `load_heads` loads for it)."""
    enc, score, extract = card.capabilities.encode, card.capabilities.score, card.capabilities.extract
    kinds = []
    if enc and enc.sparse and enc.sparse.kind != "term-frequency":  # counted from the tokenizer: no head
        kinds.append(enc.sparse.kind)
    if enc and enc.multivector:
        kinds.append("colbert")
    if (score and score.kind == "cross-encoder") or (extract and extract.kind == "nli"):
        kinds.append("sequence-classification")
    if score and score.kind == "yes-no":
        kinds.append("yes-no")
    if extract and extract.kind in ("token-classification", "gliner"):
        kinds.append(extract.kind)
    return kinds


@dataclass
class ModelHeads:
    """Loaded heads plus the token-id sets they need (on the model's device)."""

    sparse: object | None = None
    multivector: object | None = None
    classifier: object | None = None          # cross-encoder / NLI sequence classification
    yes_no: object | None = None
    tagger: object | None = None              # token classification
    spans: object | None = None               # GLiNER
    special_ids: torch.Tensor | None = None   # sparse outputs may skip these
    punctuation_ids: torch.Tensor | None = None
    idf: dict[int, float] = field(default_factory=dict)   # inference-free sparse queries


def special_token_ids(tokenizer: Tokenizer, config) -> list[int]:
    """Ids of [CLS]/[SEP]/pad/unk/mask-like tokens: the tokenizer's special added tokens plus the config's ids."""
    ids = {i for i, tok in tokenizer.get_added_tokens_decoder().items() if tok.special}
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id", "unk_token_id"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            ids.add(value)
    return sorted(ids)


def token_id(tokenizer: Tokenizer, token: str, field_name: str) -> int:
    tid = tokenizer.token_to_id(token)
    if tid is None:
        raise ModelLoadFailed(f"{field_name}: token '{token}' is not in the model's vocabulary", field=field_name)
    return tid


def load_heads(card: ModelCard, folder: Path, runner: Runner, tokenizer: Tokenizer, *, device: torch.device,
               dtype: torch.dtype) -> ModelHeads:
    config = runner.config
    heads = ModelHeads()
    ids = lambda values: torch.tensor(values, dtype=torch.long, device=device)  # noqa: E731
    enc, score, extract = card.capabilities.encode, card.capabilities.score, card.capabilities.extract
    if enc and enc.sparse:
        if enc.sparse.kind == "splade":
            heads.sparse = head_class("splade").load(folder, config, device=device, dtype=dtype)
        elif enc.sparse.kind == "token-weights":
            heads.sparse = head_class("token-weights").load(folder / enc.sparse.weights, device=device, dtype=dtype)
        specials = special_token_ids(tokenizer, config)
        if enc.sparse.kind == "token-weights":  # bge-m3 skips cls/eos/pad/unk, not <mask>
            masks = {tokenizer.token_to_id(t) for t in ("<mask>", "[MASK]")}
            specials = [i for i in specials if i not in masks]
        heads.special_ids = ids(specials)
        if enc.sparse.query_weights == "idf":
            heads.idf = _read_idf(folder, tokenizer)
    if enc and enc.multivector:
        mv = enc.multivector
        heads.multivector = head_class("colbert").load(folder, mv.projection, normalize=mv.normalize,
                                                       skip_first_token=mv.skip_first_token, device=device, dtype=dtype)
        if heads.multivector.dims != mv.dims:
            raise ModelLoadFailed(f"capabilities.encode.multivector.dims: card says {mv.dims}, the projection "
                                  f"gives {heads.multivector.dims}", field="capabilities.encode.multivector.dims")
        if mv.skip_punctuation:
            from sie.models.colbert import punctuation_ids

            heads.punctuation_ids = ids(punctuation_ids(tokenizer))
    if (score and score.kind == "cross-encoder") or (extract and extract.kind == "nli"):
        heads.classifier = head_class("sequence-classification").load(folder, config, device=device, dtype=dtype)
        labels = heads.classifier.labels
        if extract and extract.kind == "nli" and not any(label.lower().startswith("entail") for label in labels):
            raise ModelLoadFailed(f"capabilities.extract.kind: 'nli' needs an 'entailment' label; the model's "
                                  f"labels are {labels}", field="capabilities.extract.kind")
    if score and score.kind == "yes-no":
        heads.yes_no = head_class("yes-no").load(
            folder, config, yes_id=token_id(tokenizer, score.yes_token, "capabilities.score.yes_token"),
            no_id=token_id(tokenizer, score.no_token, "capabilities.score.no_token"), device=device, dtype=dtype)
    if extract and extract.kind == "token-classification":
        heads.tagger = head_class("token-classification").load(folder, config, device=device, dtype=dtype)
    if extract and extract.kind == "gliner":
        heads.spans = head_class("gliner").load(folder, device=device, dtype=dtype, tensors=runner.take_head_tensors())
    return heads


def _read_idf(folder: Path, tokenizer: Tokenizer) -> dict[int, float]:
    """idf.json: {token string: weight}, as the opensearch inference-free sparse encoders ship it."""
    import json

    path = folder / "idf.json"
    if not path.exists():
        raise ModelLoadFailed(f"{folder}: capabilities.encode.sparse.query_weights is 'idf' but there is no idf.json",
                              field="capabilities.encode.sparse.query_weights")
    out = {}
    for token, weight in json.loads(path.read_text()).items():
        tid = tokenizer.token_to_id(token)
        if tid is not None:
            out[tid] = float(weight)
    return out
