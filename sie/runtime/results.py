"""What the Engine returns: one result object per input item, the same in-process and over HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Timing:
    """Where one item's time went, in milliseconds: waiting in the queue, tokenizing, its forward pass."""

    queue_ms: float = 0.0
    tokenize_ms: float = 0.0
    compute_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Vocabulary-space weights: parallel arrays of token ids (int32, ascending) and weights (float32)."""

    indices: np.ndarray
    values: np.ndarray
    tokens: list[str] | None = None  # the vocabulary strings of `indices`, when asked for


@dataclass(frozen=True, slots=True)
class EncodedItem:
    """One input's encoding. `dense` is float32/float16/int8 [dims], or uint8 packed bits for binary;
    `multivector` is [tokens, dims] float32. Outputs not asked for are None."""

    dense: np.ndarray | None
    tokens: int
    truncated: bool
    sparse: SparseVector | None = None
    multivector: np.ndarray | None = None
    timing: Timing | None = None


@dataclass(frozen=True, slots=True)
class ScoredItem:
    """One document's relevance to the query; results come sorted by score, best first."""

    index: int          # position in the request's items
    score: float
    rank: int           # 0 = best
    tokens: int = 0
    truncated: bool = False
    timing: Timing | None = None


@dataclass(frozen=True, slots=True)
class Entity:
    text: str           # exactly items[i][start:end]
    label: str
    score: float
    start: int          # character offsets into the input text
    end: int


@dataclass(frozen=True, slots=True)
class Classification:
    label: str
    score: float


@dataclass(frozen=True, slots=True)
class ExtractedItem:
    entities: list[Entity] = field(default_factory=list)
    classifications: list[Classification] = field(default_factory=list)
    tokens: int = 0
    truncated: bool = False
    timing: Timing | None = None


@dataclass(frozen=True, slots=True)
class TokenizedText:
    """One text as the model's tokenizer splits it, untruncated: its token count, and when asked for, the
    token ids and each token's (start, end) character span ((0, 0) for special tokens)."""

    tokens: int
    ids: list[int] | None = None
    offsets: list[tuple[int, int]] | None = None
