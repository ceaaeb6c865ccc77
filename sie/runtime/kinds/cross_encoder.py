"""Cross-encoder rerankers: (query, document) pairs through a sequence-classification head; relevance is
the card's activation of the head's logits (sigmoid / none of one logit, or softmax then label_index)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sie.catalog.card import ModelCard, ScoreCapability
from sie.runtime.kinds.base import HeadLoad
from sie.runtime.kinds.sequence_head import PairScoreKind
from sie.runtime.scoring import sigmoid
from sie.runtime.tokenizer import Tokenized

if TYPE_CHECKING:
    from sie.runtime.loaded_model import LoadedModel


class CrossEncoderKind(PairScoreKind):
    name = "cross-encoder"
    heads = ("sequence-classification",)

    def load(self, card: ModelCard, at: HeadLoad) -> object:
        return at.head("sequence-classification",
                       lambda cls: cls.load(at.folder, at.config, device=at.device, dtype=at.dtype))

    def pairs(self, loaded: LoadedModel, card: ModelCard, query: str, documents: list[str],
              instruction: str | None) -> list[Tokenized]:
        q = card.prompts.query_prefix(instruction) + query
        return loaded.tokenizer.encode_pairs([(q, d) for d in documents])

    def relevance(self, logits: np.ndarray, spec: ScoreCapability) -> float:
        logits = np.asarray(logits, dtype=np.float64)
        if spec.activation == "softmax":
            e = np.exp(logits - logits.max())
            return float(e[spec.label_index] / e.sum())
        value = float(logits[spec.label_index if len(logits) > 1 else 0])
        return sigmoid(value) if spec.activation == "sigmoid" else value
