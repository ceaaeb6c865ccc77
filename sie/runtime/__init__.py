"""Cards → loaded models → the Engine facade. `Engine` is imported lazily (it needs torch); the
result types are plain data and import nothing heavy."""

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


def __getattr__(name: str):
    if name == "Engine":
        from sie.runtime.engine import Engine

        return Engine
    raise AttributeError(f"module 'sie.runtime' has no attribute {name!r}")
