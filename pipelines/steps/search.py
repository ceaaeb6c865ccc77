"""`search`: the query's vectors against one sink (dense, or hybrid with fusion where the sink can).

    - search: {sink: {type: lancedb, uri: ./lance, collection: docs}, limit: 50, where: {lang: en}}

`vector` names the record vector to search when the encode step made several (a list fuses them, on
sinks that support hybrid search). The sink's `collection` is a logical name: each query first follows it
(`Sink.follow`), so a blue/green reindex's switch is seen by the next query, and never a half-written
collection. A per-query `where` and the filters of `extract_filters` are ANDed
with the configured one.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from pydantic import Field, field_validator

from pipelines.errors import PipelineError
from pipelines.steps.base import Candidate, QueryState, QueryStep, StepConfig, VectorSearch
from pipelines.steps.fields import checked_where
from pipelines.steps.rules import NeedsBefore, Once, Required, makes_vectors


class SearchConfig(StepConfig):
    sink_keys = ("sink",)

    sink: dict[str, Any] = Field(description="A connector config (type, collection, location).")
    vector: str | list[str] | None = Field(None, description="Vector name(s) to search; default: the one made.")
    limit: int = Field(20, gt=0, le=10_000, description="Candidates retrieved.")
    where: dict[str, Any] | None = Field(None, description="Metadata filter (where language).")

    @field_validator("where")
    @classmethod
    def _where(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return checked_where(value)

    def vector_search(self) -> VectorSearch:
        names = (self.vector,) if isinstance(self.vector, str) else tuple(self.vector or ())
        return VectorSearch("sink", self.sink, "vector", names)


def and_where(*parts: dict[str, Any] | None) -> dict[str, Any] | None:
    present = [p for p in parts if p]
    if not present:
        return None
    return present[0] if len(present) == 1 else {"$and": present}


class SearchStep(QueryStep):
    name = "search"
    config_class = SearchConfig
    rules = (Once("only one search step per query pipeline"), Required("a query pipeline needs a search step"),
             NeedsBefore(makes_vectors, "needs an encode step before it (the query's vector)"))

    def __init__(self, config: SearchConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self._sink: Any = None
        self._lock = threading.Lock()  # embedded engines (Qdrant local) are not safe across threads

    def sink(self) -> Any:
        if self._sink is None:
            from connectors import open_sink

            sink = open_sink(self.config.sink)
            sink.ensure()
            self._sink = sink
        return self._sink

    def query_vector(self, state: QueryState, hybrid: bool) -> tuple[Any, str | None]:
        wanted = self.config.vector
        names = [wanted] if isinstance(wanted, str) else list(wanted or state.vectors)
        missing = [n for n in names if n not in state.vectors]
        if missing:
            raise PipelineError(f"search.vector: {missing[0]!r} was not made by the encode step "
                                f"(it makes {', '.join(state.vectors)})", field="search.vector")
        if len(names) == 1:
            return state.vectors[names[0]], names[0]
        if not hybrid:
            raise PipelineError(f"search.vector: the encode step makes {', '.join(names)} and this sink cannot fuse "
                                "several searches; name one with `vector:`", field="search.vector")
        return {n: state.vectors[n] for n in names}, None

    async def run(self, state: QueryState, options: dict[str, Any]) -> None:
        limit = int(options.get("limit") or self.config.limit)
        where = and_where(self.config.where, options.get("where"), state.where)
        state.notes["where"] = where

        def search() -> list[Any]:
            with self._lock:
                sink = self.sink()
                sink.follow()
                query, name = self.query_vector(state, sink.hybrid)
                return sink.search(query, vector_name=name, where=where, limit=limit)

        hits = await asyncio.to_thread(search)
        state.hits = [Candidate(h.id, h.text, h.metadata, h.score, h.score, rank) for rank, h in enumerate(hits)]
        state.retrieved = list(state.hits)

    def close(self) -> None:
        with self._lock:
            if self._sink is not None:
                self._sink.close()
                self._sink = None
