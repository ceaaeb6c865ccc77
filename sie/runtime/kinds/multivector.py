"""Multivector (ColBERT, bge-m3): one vector per token (sie.models.colbert). Its declaration also shapes
every encode input of the card: role markers after [CLS] at the role's length limit, and queries padded
with [MASK]. Documents drop the vectors of punctuation tokens when the card says so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from sie.catalog.card import ModelCard
from sie.errors import InvalidInput, ModelLoadFailed
from sie.models.colbert import augmented_query, punctuation_ids, with_marker
from sie.runtime.kinds.base import HeadLoad, OutputKind
from sie.runtime.tokenizer import TextTokenizer, Tokenized

if TYPE_CHECKING:
    from sie.models.runner import PackedBatch
    from sie.runtime.loaded_model import LoadedModel


@dataclass
class MultivectorHeads:
    head: object
    punctuation_ids: torch.Tensor | None    # dropped from documents (skip_punctuation)


class MultivectorKind(OutputKind):
    name = "multivector"
    row = "multivector"
    heads = ("colbert",)
    role_sensitive = True
    shapes_sequences = True

    def load(self, card: ModelCard, at: HeadLoad) -> MultivectorHeads:
        mv = card.capabilities.encode.multivector
        head = at.head("colbert", lambda cls: cls.load(at.folder, mv.projection, normalize=mv.normalize,
                                                       skip_first_token=mv.skip_first_token, device=at.device,
                                                       dtype=at.dtype))
        if head.dims != mv.dims:
            raise ModelLoadFailed(f"capabilities.encode.multivector.dims: card says {mv.dims}, the projection "
                                  f"gives {head.dims}", field="capabilities.encode.multivector.dims")
        return MultivectorHeads(head, at.ids(punctuation_ids(at.tokenizer)) if mv.skip_punctuation else None)

    def sequences(self, card: ModelCard, tokenizer: TextTokenizer, texts: list[str], *,
                  is_query: bool) -> list[Tokenized]:
        """Token sequences for one role: the marker after [CLS], at the role's length limit; ColBERT queries
        padded with [MASK] (see sie.models.colbert)."""
        mv = card.capabilities.encode.multivector
        marker_token = mv.query_marker if is_query else mv.document_marker
        limit = (mv.query_tokens if is_query else mv.document_tokens) or tokenizer.max_tokens
        limit = min(limit, tokenizer.max_tokens)
        marker = None if marker_token is None else _token_id(tokenizer, marker_token, "query_marker" if is_query
                                                              else "document_marker")
        seqs = tokenizer.limited(limit - (marker is not None)).encode(texts)
        out = []
        for s in seqs:
            ids = with_marker(s.ids, marker)
            if is_query and mv.mask_augmentation:
                mask_id = _mask_id(tokenizer)
                padded, keys = augmented_query(ids, mv.query_tokens, mask_id, mv.attend_to_mask_tokens)
                out.append(s.with_ids(padded, keys))
            else:
                out.append(s.with_ids(ids) if marker is not None else s)
        return out

    def compute(self, loaded: LoadedModel, hidden: torch.Tensor, batch: PackedBatch, metas: list[Any]) -> list:
        """[tokens, dims] per sequence; documents without their punctuation vectors."""
        state = self.state(loaded)
        return state.head(hidden, batch, state.punctuation_ids if metas[0].role == "document" else None)


def _token_id(tokenizer: TextTokenizer, token: str, field: str) -> int:
    tid = tokenizer.backend.token_to_id(token)
    if tid is None:
        raise InvalidInput(f"capabilities.encode.multivector.{field}: token '{token}' is not in the vocabulary",
                           field=f"capabilities.encode.multivector.{field}")
    return tid


def _mask_id(tokenizer: TextTokenizer) -> int:
    for candidate in ("[MASK]", "<mask>"):
        tid = tokenizer.backend.token_to_id(candidate)
        if tid is not None:
            return tid
    raise InvalidInput("capabilities.encode.multivector.mask_augmentation: the tokenizer has no [MASK] token",
                       field="capabilities.encode.multivector.mask_augmentation")
