"""The Engine protocol: what the pipelines (and any other caller) may rely on. Implemented by the
in-process `sie.Engine` and by the HTTP `sie.SieClient`."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from sie.runtime.results import EncodedItem, ExtractedItem, ScoredItem


@runtime_checkable
class EngineProtocol(Protocol):
    async def encode(self, model: str, items: list[str], *, is_query: bool = False, dims: int | None = None,
                     dtype: str = "float32", normalize: bool | None = None, instruction: str | None = None,
                     **options: Any) -> list[EncodedItem]: ...

    async def score(self, model: str, query: str, items: list[str], *, top_k: int | None = None,
                    instruction: str | None = None, **options: Any) -> list[ScoredItem]: ...

    async def extract(self, model: str, items: list[str], *, labels: list[str] | None = None,
                      threshold: float | None = None, flat: bool = True, multi_label: bool = False,
                      **options: Any) -> list[ExtractedItem]: ...

    def encode_sync(self, model: str, items: list[str], **options: Any) -> list[EncodedItem]: ...

    def score_sync(self, model: str, query: str, items: list[str], **options: Any) -> list[ScoredItem]: ...

    def extract_sync(self, model: str, items: list[str], **options: Any) -> list[ExtractedItem]: ...
