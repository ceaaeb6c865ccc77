"""Cards → loaded models → the Engine facade."""

from sie.runtime.engine import EncodedItem, Engine

__all__ = ["EncodedItem", "Engine"]
