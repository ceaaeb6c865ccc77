"""Encode beyond dense vectors: which outputs a request may ask for, the role-specific token sequences
multivector models need (ColBERT markers and [MASK] augmentation), inference-free sparse queries, and
the per-request finishing of sparse vectors (top-k, token strings).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sie.catalog.card import ModelCard
from sie.errors import InvalidInput
from sie.models.colbert import augmented_query, with_marker
from sie.runtime.results import SparseVector
from sie.runtime.tokenizer import TextTokenizer, Tokenized

OUTPUT_TYPES = ("dense", "sparse", "multivector")


def output_types(card: ModelCard, asked: Sequence[str] | None) -> tuple[str, ...]:
    """The outputs to compute, in canonical order. None: the card's dense output, else its first one."""
    enc = card.capabilities.encode
    offered = [t for t in OUTPUT_TYPES if enc is not None and getattr(enc, t) is not None]
    if not offered:
        raise InvalidInput(f"model: '{card.name}' has no encode capability (it scores or extracts)", field="model")
    if asked is None:
        return (offered[0],)
    if isinstance(asked, str) or not isinstance(asked, Sequence) or not asked:
        raise InvalidInput(f"output_types: expected a non-empty list of {', '.join(OUTPUT_TYPES)}, got {asked!r}",
                           field="output_types")
    for t in asked:
        if t not in OUTPUT_TYPES:
            raise InvalidInput(f"output_types: unknown output '{t}'; valid: {', '.join(OUTPUT_TYPES)}",
                               field="output_types")
        if t not in offered:
            raise InvalidInput(f"output_types: '{card.name}' has no {t} output; it offers {', '.join(offered)}",
                               field="output_types")
    return tuple(t for t in OUTPUT_TYPES if t in asked)


def validate_top_k(top_k: object, field: str = "sparse_top_k") -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise InvalidInput(f"{field}: expected a positive integer, got {top_k!r}", field=field)


def role_sequences(card: ModelCard, tokenizer: TextTokenizer, texts: list[str], *, is_query: bool) -> list[Tokenized]:
    """Token sequences for one role. Multivector models with markers get them after [CLS], at the
    role's length limit; ColBERT queries are padded with [MASK] (see sie.models.colbert)."""
    mv = card.capabilities.encode.multivector if card.capabilities.encode else None
    if mv is None:
        return tokenizer.encode(texts)
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


def idf_sparse(seqs: list[Tokenized], idf: dict[int, float], skip: set[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Inference-free sparse queries: each distinct token weighs its idf (tokens without one are left out)."""
    out = []
    for s in seqs:
        ids = sorted({t for t in s.ids if t not in skip and idf.get(t, 0.0) > 0})
        out.append((np.array(ids, dtype=np.int32), np.array([idf[t] for t in ids], dtype=np.float32)))
    return out


def term_frequency_sparse(seqs: list[Tokenized], skip: set[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Lexical sparse vectors without a model: 1 + ln(count) per distinct token id (ids ascending)."""
    out = []
    for s in seqs:
        ids, counts = np.unique(np.array([t for t in s.ids if t not in skip], dtype=np.int64), return_counts=True)
        out.append((ids.astype(np.int32), (1.0 + np.log(counts)).astype(np.float32)))
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
