"""Late interaction (ColBERT): MaxSim of the query's and each document's multivectors."""

from __future__ import annotations

import numpy as np

from sie.runtime.kinds.vector_scoring import VectorScoreKind


class LateInteractionKind(VectorScoreKind):
    name = "late-interaction"
    output = "multivector"

    def measure(self, query: np.ndarray, document: np.ndarray) -> float:
        return maxsim(query, document)


def maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """For each query vector its best dot product over the document's, summed."""
    if len(query) == 0 or len(document) == 0:
        return 0.0
    return float((query.astype(np.float32) @ document.astype(np.float32).T).max(axis=1).sum())
