"""What the sparse kinds (splade, token-weights, term-frequency) share: the special-token ids they may
skip, inference-free queries weighted by idf.json, and the per-request finishing (top-k, token strings)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tokenizers import Tokenizer

from sie.catalog.card import ModelCard, SparseOutput
from sie.errors import ModelLoadFailed
from sie.models.heads import special_token_ids
from sie.runtime.kinds.base import HeadLoad, OutputKind
from sie.runtime.results import SparseVector
from sie.runtime.tokenizer import TextTokenizer, Tokenized

if TYPE_CHECKING:
    from sie.models.runner import PackedBatch
    from sie.runtime.loaded_model import LoadedModel


@dataclass
class SparseHeads:
    head: object | None                 # None: counted from the tokenizer (term-frequency)
    special_ids: torch.Tensor           # what skip_special_tokens skips
    idf: dict[int, float]               # token id → weight, for inference-free queries


class SparseKind(OutputKind):
    row = "sparse"

    def load_head(self, spec: SparseOutput, at: HeadLoad) -> object | None:
        return None

    def special_ids(self, at: HeadLoad) -> list[int]:
        return special_token_ids(at.tokenizer, at.config)

    def load(self, card: ModelCard, at: HeadLoad) -> SparseHeads:
        spec = card.capabilities.encode.sparse
        head = self.load_head(spec, at)
        special = at.ids(self.special_ids(at))
        return SparseHeads(head, special, read_idf(at.folder, at.tokenizer) if spec.query_weights == "idf" else {})

    def computed(self, card: ModelCard, is_query: bool) -> bool:
        return not (is_query and card.capabilities.encode.sparse.query_weights == "idf")

    def skipped(self, spec: SparseOutput, state: SparseHeads) -> torch.Tensor | None:
        """Token ids whose weights the head drops."""
        return state.special_ids if spec.skip_special_tokens else None

    def compute(self, loaded: LoadedModel, hidden: torch.Tensor, batch: PackedBatch, metas: list[Any]) -> list:
        """(ids, weights) per sequence."""
        state = self.state(loaded)
        return state.head(hidden, batch, self.skipped(loaded.card.capabilities.encode.sparse, state))

    def skip_set(self, loaded: LoadedModel) -> set[int]:
        skip = loaded.card.capabilities.encode.sparse.skip_special_tokens
        return set(self.state(loaded).special_ids.tolist()) if skip else set()

    def without_model(self, loaded: LoadedModel, seqs: list[Tokenized]) -> list:
        return idf_sparse(seqs, self.state(loaded).idf, self.skip_set(loaded))

    def finish(self, card: ModelCard, tokenizer, rows: list, ask: Any) -> list:
        top_k = ask.sparse_top_k if ask.sparse_top_k is not None else card.capabilities.encode.sparse.top_k
        vocab = tokenizer if ask.sparse_tokens else None
        return [finish_sparse(*row, top_k=top_k, tokenizer=vocab) for row in rows]


def read_idf(folder: Path, tokenizer: Tokenizer) -> dict[int, float]:
    """idf.json: {token string: weight}, as the opensearch inference-free sparse encoders ship it."""
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


def idf_sparse(seqs: list[Tokenized], idf: dict[int, float], skip: set[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inference-free sparse queries: each distinct token weighs its idf (tokens without one are left out)."""
    out = []
    for s in seqs:
        ids = sorted({t for t in s.ids if t not in skip and idf.get(t, 0.0) > 0})
        out.append((np.array(ids, dtype=np.int32), np.array([idf[t] for t in ids], dtype=np.float32)))
    return out


def finish_sparse(indices: np.ndarray, values: np.ndarray, *, top_k: int | None, tokenizer: TextTokenizer | None
                  ) -> SparseVector:
    """Keep the top_k heaviest entries (ties: lower id first), ids ascending; add token strings when asked."""
    if top_k is not None and len(values) > top_k:
        keep = np.lexsort((indices, -values))[:top_k]
        keep.sort()
        indices, values = indices[keep], values[keep]
    tokens = None if tokenizer is None else [tokenizer.backend.id_to_token(int(i)) or "" for i in indices]
    return SparseVector(indices.astype(np.int32), values.astype(np.float32), tokens)
