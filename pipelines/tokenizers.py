"""Tokenizers by model name, for chunking by tokens and for token budgets (`trim`).

Only the tokenizer is loaded (tokenizer.json from the model's local weights), never the model, so a
pipeline host with a remote engine can still count tokens when the weights folder is on disk. Counts
exclude special tokens: they measure what an LLM will read, not what an encoder sees.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.errors import PipelineError


@dataclass(frozen=True, slots=True)
class Encoded:
    ids: list[int]
    offsets: list[tuple[int, int]]


class TokenCounter:
    def __init__(self, tokenizer: Any, name: str) -> None:
        from tokenizers import Tokenizer

        # A private copy: truncation/padding set by the engine on a shared instance must not apply here.
        self._tok = Tokenizer.from_str(tokenizer.to_str())
        self._tok.no_truncation()
        self._tok.no_padding()
        self.name = name

    def encode(self, text: str) -> Encoded:
        enc = self._tok.encode(text, add_special_tokens=False)
        return Encoded(list(enc.ids), [tuple(o) for o in enc.offsets])

    def count(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=False)]


class Tokenizers:
    """name -> TokenCounter, loaded once, from a catalog (the in-process engine's, or the local one)."""

    def __init__(self, catalog: Any | None = None) -> None:
        self._catalog = catalog
        self._cache: dict[str, TokenCounter] = {}
        self._lock = threading.Lock()

    @property
    def catalog(self) -> Any:
        if self._catalog is None:
            from sie.catalog import Catalog
            from sie.config import Settings

            self._catalog = Catalog.from_dirs(*Settings.load().catalog_dirs, strict=False)
        return self._catalog

    def __call__(self, name: str) -> TokenCounter:
        with self._lock:
            if name not in self._cache:
                self._cache[name] = self._load(name)
            return self._cache[name]

    def _load(self, name: str) -> TokenCounter:
        from sie.errors import SieError
        from sie.runtime.tokenizer import TextTokenizer
        from sie.runtime.weights import resolve_weights

        try:
            card = self.catalog.get(name)
            folder = Path(resolve_weights(card.source))
            return TokenCounter(TextTokenizer.load(folder, card.max_tokens).backend, card.name)
        except SieError as e:
            raise PipelineError(f"tokenizer: cannot load the tokenizer of '{name}': {e.message}",
                                field="tokenizer", code="tokenizer_unavailable") from None
