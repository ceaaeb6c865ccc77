"""Pick the best model whose weights are on this machine: the one the example prefers, else the bundled
all-MiniLM-L6-v2 (which encodes, reranks by cosine and classifies zero-shot by similarity)."""

from __future__ import annotations

BUNDLED = "all-MiniLM-L6-v2"


def best_available(preferred: str) -> str:
    from sie.catalog import Catalog
    from sie.errors import SieError
    from sie.runtime.weights import resolve_weights

    try:
        resolve_weights(Catalog.from_dirs().get(preferred).source)
        return preferred
    except SieError:
        return BUNDLED
