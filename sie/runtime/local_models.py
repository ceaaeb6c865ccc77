"""The catalog's half of the Engine protocol: which models exist (their cards as plain data) and how
their tokenizers count, without loading a model or torch (only each model's tokenizer.json is read).

The in-process `Engine` answers `models()`, `count_tokens()` and `tokenize()` through one of these;
`sie validate` / `sie plan` (and a not-yet-built engine) use one alone.

Counts are the tokenizer's own, untruncated, with the special tokens the model adds unless
`add_special_tokens=False` (what an LLM reading the text would see). A text the model would truncate
counts in full: counting is how a caller learns that it is too long.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from sie.call_options import check_flags, check_lane, check_timeout_ms, reject_unknown
from sie.catalog import Catalog, ModelCard
from sie.errors import InvalidInput
from sie.runtime.results import TokenizedText
from sie.runtime.tokenizer import TextTokenizer
from sie.runtime.weights import resolve_weights


def card_listing(card: ModelCard) -> dict[str, Any]:
    """One model as GET /v1/models lists it (before its run-time state): plain, serialisable data."""
    return {"id": card.name, "object": "model", "owned_by": "sie", "aliases": list(card.aliases),
            "architecture": card.architecture, "capabilities": card.capabilities.model_dump(exclude_none=True),
            "dims": card.dense_dims, "pooling": card.pooling, "max_tokens": card.max_tokens,
            "source": card.source.describe()}


def countable_texts(texts: object, field: str = "texts") -> list[str]:
    """A list of strings; unlike encode's inputs, empty ones are fine (they count 0 tokens plus specials)."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InvalidInput(f"{field}: expected a list of strings, got {type(texts).__name__}", field=field)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInput(f"{field}[{i}]: expected a string, got {type(text).__name__}", field=f"{field}[{i}]")
    return list(texts)


class LocalModels:
    def __init__(self, catalog: Catalog, *, allow_downloads: bool = False) -> None:
        self.catalog = catalog
        self.allow_downloads = allow_downloads
        self._tokenizers: dict[str, TextTokenizer] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any = None) -> LocalModels:
        """The catalog `sie serve` would use (SIE_CATALOG_DIRS, the config file)."""
        from sie.config import Settings

        s = settings or Settings.load()
        return cls(Catalog.from_dirs(*s.catalog_dirs, strict=False), allow_downloads=s.allow_downloads)

    # -- the work (blocking; the Engine runs it on its tokenizer threads) ---------------------------
    def listing(self) -> list[dict[str, Any]]:
        return [card_listing(card) for card in self.catalog]

    def tokenizer(self, model: str) -> TextTokenizer:
        """The model's tokenizer, loaded once from its weights folder (WeightsNotFound when not here)."""
        card = self.catalog.get(model)
        with self._lock:
            if card.name not in self._tokenizers:
                folder = Path(resolve_weights(card.source, allow_downloads=self.allow_downloads))
                self._tokenizers[card.name] = TextTokenizer.load(folder, card.max_tokens)
            return self._tokenizers[card.name]

    def tokenize_now(self, model: str, texts: list[str], *, add_special_tokens: bool = True,
                     return_ids: bool = False, return_offsets: bool = False) -> list[TokenizedText]:
        check_flags(add_special_tokens=add_special_tokens, return_ids=return_ids, return_offsets=return_offsets)
        texts = countable_texts(texts)
        tokenizer = self.tokenizer(model)  # also for an empty list: asking nothing still checks the tokenizer
        if not texts:
            return []
        return [TokenizedText(len(e.ids), list(e.ids) if return_ids else None,
                              [tuple(o) for o in e.offsets] if return_offsets else None)
                for e in tokenizer.untruncated(texts, add_special_tokens=add_special_tokens)]

    # -- the protocol -------------------------------------------------------------------------------
    async def models(self) -> list[dict[str, Any]]:
        return self.listing()

    def models_sync(self) -> list[dict[str, Any]]:
        return self.listing()

    async def count_tokens(self, model: str, texts: list[str], **options: Any) -> list[int]:
        return await asyncio.to_thread(partial(self.count_tokens_sync, model, texts, **options))

    def count_tokens_sync(self, model: str, texts: list[str], *, add_special_tokens: bool = True,
                          priority: str = "interactive", timeout_ms: float | None = None,
                          **unknown: Any) -> list[int]:
        """`priority` and `timeout_ms` are checked, nothing more: counting here waits behind nobody."""
        reject_unknown("count_tokens", unknown)
        check_lane(priority)
        check_timeout_ms(timeout_ms)
        return [t.tokens for t in self.tokenize_now(model, texts, add_special_tokens=add_special_tokens)]

    async def tokenize(self, model: str, texts: list[str], **options: Any) -> list[TokenizedText]:
        return await asyncio.to_thread(partial(self.tokenize_sync, model, texts, **options))

    def tokenize_sync(self, model: str, texts: list[str], *, add_special_tokens: bool = True,
                      return_ids: bool = False, return_offsets: bool = False, priority: str = "interactive",
                      timeout_ms: float | None = None, **unknown: Any) -> list[TokenizedText]:
        reject_unknown("tokenize", unknown)
        check_lane(priority)
        check_timeout_ms(timeout_ms)
        return self.tokenize_now(model, texts, add_special_tokens=add_special_tokens, return_ids=return_ids,
                                 return_offsets=return_offsets)
