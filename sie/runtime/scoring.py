"""What every score kind's result shares: relevance measures over vectors, and the sorted, ranked list."""

from __future__ import annotations

import numpy as np

from sie.runtime.results import ScoredItem


def sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na and nb else 0.0


def ranked(scores: list[float], tokens: list[int], truncated: list[bool], top_k: int | None = None
           ) -> list[ScoredItem]:
    """Best first (ties keep input order), rank 0 = best, cut to top_k."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    if top_k is not None:
        order = order[:top_k]
    return [ScoredItem(index=i, score=scores[i], rank=r, tokens=tokens[i], truncated=truncated[i])
            for r, i in enumerate(order)]
