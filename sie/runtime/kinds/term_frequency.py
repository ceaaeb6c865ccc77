"""Lexical sparse vectors without a model: 1 + ln(count) per distinct token of the model's tokenizer (ids
ascending). With a sink that applies IDF (Qdrant's `idf` modifier) this is BM25-style search for hybrid
queries; nothing goes through the forward pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sie.catalog.card import ModelCard
from sie.runtime.kinds.sparse import SparseKind
from sie.runtime.tokenizer import Tokenized

if TYPE_CHECKING:
    from sie.runtime.loaded_model import LoadedModel


class TermFrequencyKind(SparseKind):
    name = "term-frequency"

    def computed(self, card: ModelCard, is_query: bool) -> bool:
        return False

    def without_model(self, loaded: LoadedModel, seqs: list[Tokenized]) -> list:
        return term_frequency_sparse(seqs, self.skip_set(loaded))


def term_frequency_sparse(seqs: list[Tokenized], skip: set[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for s in seqs:
        ids, counts = np.unique(np.array([t for t in s.ids if t not in skip], dtype=np.int64), return_counts=True)
        out.append((ids.astype(np.int32), (1.0 + np.log(counts)).astype(np.float32)))
    return out
