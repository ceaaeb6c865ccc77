"""Token counts and token spans by model name, for chunking by tokens and for token budgets (`trim`).

Asked of the engine the pipeline uses, through the Engine protocol (`count_tokens` / `tokenize`): the
in-process Engine reads only the model's tokenizer (never its weights), and a remote engine counts on its
own machine, so a pipeline host with `engine: http://...` needs no weights to chunk or trim. Counts
exclude special tokens: they measure what an LLM will read, not what an encoder sees.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pipelines.errors import PipelineError
from pipelines.models import ModelDirectory, directory_for
from sie.errors import SieError
from sie.protocol import ModelsProtocol

#: What the counts here are: the text's own tokens, none of the [CLS]/[SEP] an encoder adds.
TEXT_ONLY = {"add_special_tokens": False}


@dataclass(frozen=True, slots=True)
class Encoded:
    ids: list[int]
    offsets: list[tuple[int, int]]


class TokenCounter:
    """One model's tokenizer, on the engine. Sync methods for ingest steps (they run on threads), async ones
    for query steps (they must not hold the event loop while a remote engine answers)."""

    def __init__(self, engine: ModelsProtocol, name: str, priority: str = "interactive") -> None:
        self._engine = engine
        self.name = name            # the canonical model name
        self._options = {**TEXT_ONLY, "priority": priority}

    def encode(self, text: str) -> Encoded:
        (t,) = self._engine.tokenize_sync(self.name, [text], return_ids=True, return_offsets=True, **self._options)
        return Encoded(t.ids or [], t.offsets or [])

    def count(self, texts: list[str]) -> list[int]:
        return self._engine.count_tokens_sync(self.name, texts, **self._options) if texts else []

    async def encode_async(self, text: str, timeout_ms: float | None = None) -> Encoded:
        (t,) = await self._engine.tokenize(self.name, [text], return_ids=True, return_offsets=True, **self._options,
                                           **_budget(timeout_ms))
        return Encoded(t.ids or [], t.offsets or [])

    async def count_async(self, texts: list[str], timeout_ms: float | None = None) -> list[int]:
        """`timeout_ms`: a query's remaining budget; the engine counts it on its deadline thread."""
        if not texts:
            return []
        return await self._engine.count_tokens(self.name, texts, **self._options, **_budget(timeout_ms))


def _budget(timeout_ms: float | None) -> dict:
    return {} if timeout_ms is None else {"timeout_ms": timeout_ms}


class Tokenizers:
    """name -> TokenCounter, checked once per name: the engine knows the model and can load its tokenizer.
    `priority`: the engine lane the counting runs in (ingest runs count in the batch lane)."""

    def __init__(self, engine: ModelsProtocol, *, priority: str = "interactive") -> None:
        self._engine = engine
        self._priority = priority
        self._directory: ModelDirectory | None = None
        self._cache: dict[str, TokenCounter] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str) -> TokenCounter:
        with self._lock:
            if name not in self._cache:
                self._cache[name] = self._load(name)
            return self._cache[name]

    def _load(self, name: str) -> TokenCounter:
        try:
            self._engine.count_tokens_sync(name, [], priority=self._priority)  # nothing to count: a load check
        except SieError as e:
            raise PipelineError(f"tokenizer: cannot load the tokenizer of '{name}': {e.message}",
                                field="tokenizer", code="tokenizer_unavailable") from None
        if self._directory is None:
            self._directory = directory_for(self._engine)
        info = self._directory.get(name)
        return TokenCounter(self._engine, info.name if info else name, self._priority)
