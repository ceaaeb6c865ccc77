"""An extract request's options, validated against the card's extract capability and its kind: the labels
(the request's, deduplicated in order, or the card's) and the minimum score. The kinds do the rest
(sie.runtime.kinds: token-classification, gliner, nli, similarity)."""

from __future__ import annotations

from collections.abc import Sequence

from sie.catalog.card import ExtractCapability, ModelCard
from sie.errors import InvalidInput, UnsupportedCapability
from sie.runtime.kinds.base import ExtractKind

MAX_LABELS = 100


def capability(card: ModelCard) -> ExtractCapability:
    spec = card.capabilities.extract
    if spec is None:
        raise UnsupportedCapability(f"model: '{card.name}' has no extract capability; pick an extractor "
                                    f"(see `sie models`)", field="model")
    return spec


def request_labels(spec: ExtractCapability, labels: object, kind: ExtractKind) -> list[str]:
    """The request's labels (deduplicated, order kept) or the card's; zero-shot kinds need some."""
    if labels is None:
        chosen = list(spec.labels)
    else:
        if isinstance(labels, str) or not isinstance(labels, Sequence):
            raise InvalidInput(f"labels: expected a list of strings, got {type(labels).__name__}", field="labels")
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not label.strip():
                raise InvalidInput(f"labels[{i}]: expected a non-empty string, got {label!r}", field=f"labels[{i}]")
        chosen = list(dict.fromkeys(labels))
    if len(chosen) > MAX_LABELS:
        raise InvalidInput(f"labels: {len(chosen)} labels exceeds the limit of {MAX_LABELS}", field="labels")
    if not chosen and kind.needs_labels:
        raise InvalidInput(f"labels: a {kind.name} model extracts the labels you name; send at least one",
                           field="labels")
    return chosen


def request_threshold(spec: ExtractCapability, threshold: object) -> float:
    if threshold is None:
        return spec.threshold
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise InvalidInput(f"threshold: expected a number in [0, 1], got {threshold!r}", field="threshold")
    return float(threshold)
