"""Bi-encoder scoring: cosine of the query's and each document's dense vectors."""

from __future__ import annotations

import numpy as np

from sie.runtime.kinds.vector_scoring import VectorScoreKind
from sie.runtime.scoring import cosine


class BiEncoderKind(VectorScoreKind):
    name = "bi-encoder"
    output = "dense"

    def measure(self, query: np.ndarray, document: np.ndarray) -> float:
        return cosine(query, document)
