"""Dense: one pooled vector per input (sie.models.pooling), then per request Matryoshka width,
normalization and the wire dtype. No head weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from sie.catalog.card import ModelCard
from sie.models.pooling import finish, pool
from sie.models.vector_dtype import encode_vectors
from sie.runtime.inputs import validate_encode_options
from sie.runtime.kinds.base import OutputKind

if TYPE_CHECKING:
    from sie.models.runner import PackedBatch
    from sie.runtime.loaded_model import LoadedModel


class DenseKind(OutputKind):
    name = "dense"
    row = "dense"
    vector_options = True

    def validate(self, card: ModelCard, ask: Any) -> None:
        validate_encode_options(card, dims=ask.dims, dtype=ask.dtype, normalize=ask.normalize)

    def compute(self, loaded: LoadedModel, hidden: torch.Tensor, batch: PackedBatch, metas: list[Any]) -> list:
        """Pooled, unnormalized full-width float32 vectors on the host (width and normalization are per
        request). They stay torch tensors until `finish` has shaped them: one conversion to numpy, for the wire."""
        return list(pool(hidden, batch, loaded.card.pooling).float().cpu())

    def finish(self, card: ModelCard, tokenizer, rows: list, ask: Any) -> list:
        vectors = finish(torch.stack(rows), dims=None if ask.dims == card.dense_dims else ask.dims,
                         normalize=card.normalize if ask.normalize is None else ask.normalize)
        return list(encode_vectors(vectors.numpy(), ask.dtype))
