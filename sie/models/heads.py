"""The heads that turn token states into sparse vectors, multivectors, relevance logits, tag logits or
span scores, and the container a loaded model keeps them in.

`HEADS` is the registry (head name → module, class), like `RUNNERS`: every entry has a parity test
(tests/sie/models/test_registry.py enforces it). Dense pooling needs no weights (sie.models.pooling).
Which heads a card needs, and how each is loaded, is its kinds' business (sie.runtime.kinds).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from tokenizers import Tokenizer

from sie.errors import ModelLoadFailed

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


@dataclass
class ModelHeads:
    """What a model's kinds loaded next to its runner. `heads`: each HEADS entry once (cross-encoder and NLI
    share the sequence classifier); `kinds`: what each kind keeps for its requests (its head, token-id sets,
    idf weights), by kind name."""

    heads: dict[str, object] = field(default_factory=dict)
    kinds: dict[str, object] = field(default_factory=dict)


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
