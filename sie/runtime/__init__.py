"""Cards → loaded models → the Engine facade."""

from sie.runtime.engine import Engine
from sie.runtime.results import (
    Classification,
    EncodedItem,
    Entity,
    ExtractedItem,
    ScoredItem,
    SparseVector,
    Timing,
)

__all__ = ["Classification", "EncodedItem", "Engine", "Entity", "ExtractedItem", "ScoredItem", "SparseVector",
           "Timing"]
