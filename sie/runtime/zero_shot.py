"""What the zero-shot classification kinds share (nli, similarity): one hypothesis per label, and scores per
label → classifications, best first."""

from __future__ import annotations

import numpy as np

from sie.runtime.results import Classification


def hypotheses(labels: list[str], template: str) -> list[str]:
    return [template.replace("{}", label) for label in labels]


def softmax(x: np.ndarray) -> np.ndarray:
    """Over the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ranked_classes(labels: list[str], scores: np.ndarray, threshold: float) -> list[Classification]:
    """Best first (ties: the order the labels were given), those under `threshold` dropped."""
    order = sorted(range(len(labels)), key=lambda i: (-scores[i], i))
    return [Classification(labels[i], float(scores[i])) for i in order if scores[i] >= threshold]
