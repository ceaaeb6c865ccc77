"""Zero-shot classification with an embedder's own dense vectors: the texts and one hypothesis per label,
encoded alike, and the cosine between them. Single-label: softmax of cosine / temperature across
the labels (as CLIP-style zero-shot does). Multi-label: the cosine itself, floored at 0. No head of its own."""

from __future__ import annotations

import asyncio

import numpy as np

from sie.catalog.card import ModelCard
from sie.runtime import encoding
from sie.runtime.kinds.base import ExtractAsk, ExtractKind, Runtime
from sie.runtime.results import Classification, ExtractedItem
from sie.runtime.zero_shot import hypotheses, ranked_classes, softmax


class SimilarityKind(ExtractKind):
    name = "similarity"
    needs_labels = True
    classifies = True

    async def extract(self, rt: Runtime, card: ModelCard, texts: list[str], ask: ExtractAsk) -> list[ExtractedItem]:
        spec = card.capabilities.extract
        dense = encoding.EncodeAsk(output_types=["dense"])
        items, hyps = await asyncio.gather(
            encoding.encode(rt, card, texts, dense),
            encoding.encode(rt, card, hypotheses(ask.labels, spec.hypothesis_template), dense))
        classes = classify_by_similarity(np.stack([i.dense for i in items]), np.stack([h.dense for h in hyps]),
                                         ask.labels, multi_label=ask.multi_label, temperature=spec.temperature,
                                         threshold=ask.threshold)
        return [ExtractedItem(classifications=c, tokens=i.tokens, truncated=i.truncated, timing=i.timing)
                for c, i in zip(classes, items)]


def classify_by_similarity(texts: np.ndarray, labels_vecs: np.ndarray, labels: list[str], *, multi_label: bool,
                           temperature: float, threshold: float = 0.0) -> list[list[Classification]]:
    """texts: [n, d], labels_vecs: [k, d] (any scale) → per text, classifications sorted best first."""
    cos = (_unit(texts) @ _unit(labels_vecs).T).astype(np.float64)
    scores = cos.clip(0.0, 1.0) if multi_label or len(labels) == 1 else softmax(cos / temperature)
    return [ranked_classes(labels, row, threshold) for row in scores]


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
