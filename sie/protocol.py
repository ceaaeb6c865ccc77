"""The Engine protocol: what the pipelines (and any other caller) may rely on. Implemented by the
in-process `sie.Engine` and by the HTTP `sie.SieClient`; its models half (`ModelsProtocol`) also by
`sie.LocalModels`, the catalog alone, for tools that must not load torch (`sie validate`, `sie plan`).

Every method takes exactly the options `sie.call_options.OPTIONS` names for it; any other keyword is an
`InvalidInput` naming it, raised the same way by every implementation.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from sie.runtime.results import EncodedItem, ExtractedItem, ScoredItem, TokenizedText


@runtime_checkable
class ModelsProtocol(Protocol):
    async def models(self) -> list[dict[str, Any]]:
        """Every model, as GET /v1/models lists it: at least id, aliases, architecture, capabilities (the
        card's, as plain data), dims, pooling, max_tokens and source; a serving engine adds its run-time
        state (state, queue_depth, device_bytes, ...)."""
        ...

    async def count_tokens(self, model: str, texts: list[str], *, add_special_tokens: bool = True,
                           priority: str = "interactive", timeout_ms: float | None = None,
                           **unknown: Any) -> list[int]:
        """Tokens per text as the model's tokenizer counts them, untruncated, with the special tokens the
        model adds (unless add_special_tokens=False). An empty list only checks the tokenizer loads. With
        `timeout_ms` the counting is query-time work: it does not wait behind the lane's other counting."""
        ...

    async def tokenize(self, model: str, texts: list[str], *, add_special_tokens: bool = True,
                       return_ids: bool = False, return_offsets: bool = False, priority: str = "interactive",
                       timeout_ms: float | None = None, **unknown: Any) -> list[TokenizedText]: ...

    def models_sync(self) -> list[dict[str, Any]]: ...

    def count_tokens_sync(self, model: str, texts: list[str], **options: Any) -> list[int]: ...

    def tokenize_sync(self, model: str, texts: list[str], **options: Any) -> list[TokenizedText]: ...


@runtime_checkable
class EngineProtocol(ModelsProtocol, Protocol):
    async def encode(self, model: str, items: list[str], *, is_query: bool = False, dims: int | None = None,
                     dtype: str = "float32", normalize: bool | None = None, instruction: str | None = None,
                     output_types: list[str] | None = None, sparse_top_k: int | None = None,
                     sparse_tokens: bool = False, admission: str = "wait", priority: str = "interactive",
                     timeout_ms: float | None = None, **unknown: Any) -> list[EncodedItem]: ...

    async def score(self, model: str, query: str, items: list[str], *, top_k: int | None = None,
                    instruction: str | None = None, admission: str = "wait", priority: str = "interactive",
                    timeout_ms: float | None = None, **unknown: Any) -> list[ScoredItem]: ...

    async def extract(self, model: str, items: list[str], *, labels: list[str] | None = None,
                      threshold: float | None = None, flat: bool = True, multi_label: bool = False,
                      admission: str = "wait", priority: str = "interactive", timeout_ms: float | None = None,
                      **unknown: Any) -> list[ExtractedItem]: ...

    def encode_sync(self, model: str, items: list[str], **options: Any) -> list[EncodedItem]: ...

    def score_sync(self, model: str, query: str, items: list[str], **options: Any) -> list[ScoredItem]: ...

    def extract_sync(self, model: str, items: list[str], **options: Any) -> list[ExtractedItem]: ...
