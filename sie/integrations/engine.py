"""The engine the embedding functions run on: a process-wide in-process `sie.Engine`, or a remote one.

Embedding functions are rebuilt from stored configs (Chroma's `build_from_config`, LanceDB's registry), so
they cannot be handed an engine object there. They take `url` instead: unset means the shared in-process
engine (created on first use, or the one given to `set_default_engine`); set means the HTTP client
`sie.client.Client(url)`, which must offer the same `encode_sync`.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import numpy as np

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

_default: Any = None
_lock = threading.Lock()


class EncodeEngine(Protocol):
    def encode_sync(self, model: str, items: list[str], **options: Any) -> list[Any]: ...


def set_default_engine(engine: EncodeEngine | None) -> None:
    """Use `engine` (e.g. the server's own) for every function without a `url`; None forgets it."""
    global _default
    with _lock:
        _default = engine


def default_engine() -> EncodeEngine:
    global _default
    with _lock:
        if _default is None:
            from sie import Engine

            _default = Engine()
        return _default


def remote_engine(url: str) -> EncodeEngine:
    """An HTTP client for a `sie serve` at `url` (same encode methods as the in-process engine)."""
    from sie.client import SieClient

    return SieClient(url)


def engine_for(url: str | None) -> EncodeEngine:
    return remote_engine(url) if url else default_engine()


def encode(engine: EncodeEngine, model: str, texts: list[str], *, is_query: bool, dims: int | None,
           normalize: bool | None) -> list[np.ndarray]:
    """Dense float32 vectors, one per text."""
    options: dict[str, Any] = {"is_query": is_query}
    if dims is not None:
        options["dims"] = dims
    if normalize is not None:
        options["normalize"] = normalize
    return [np.asarray(item.dense, dtype=np.float32) for item in engine.encode_sync(model, list(texts), **options)]


def dense_dims(engine: EncodeEngine, model: str, dims: int | None) -> int:
    """The vector width: `dims`, else the model card's, else measured on one text."""
    if dims is not None:
        return dims
    card = getattr(engine, "card", None)
    if card is not None:
        width = card(model).dense_dims
        if width:
            return int(width)
    return len(encode(engine, model, ["width probe"], is_query=False, dims=None, normalize=None)[0])
