"""Query pipelines: a question in, the chunks an agent should read out, with what that costs.

    runner = QueryRunner(pipeline, engine)
    answer = await runner.query("how do I rotate keys?", max_tokens=2000)
    answer["results"]          # [{id, text, score, first_stage_score, rerank_score, metadata, tokens}]
    answer["tokens"]           # {"before": 9120, "after": 1987, "budget": 2000}: the context saved

`tokens.before` counts every retrieved candidate, `tokens.after` what is returned (with the trim step's
tokenizer, else the encode model's). Reserved `_sie_*` metadata keys are left out of the answer.
"""

from __future__ import annotations

import time
from typing import Any

from connectors.errors import ConnectorError
from connectors.filters import parse_where
from pipelines.errors import PipelineError
from pipelines.spec import Pipeline
from pipelines.steps import step_class
from pipelines.steps.base import QueryState, QueryStep, StepContext
from pipelines.tokenizers import Tokenizers

MAX_LIMIT = 10_000


class QueryRunner:
    def __init__(self, pipeline: Pipeline, engine: Any, *, tokenizers: Tokenizers | None = None) -> None:
        if pipeline.kind != "query":
            raise PipelineError(f"pipeline {pipeline.name!r} is an ingest pipeline; use `sie run`", field="kind")
        self.p = pipeline
        self.tokenizers = tokenizers or Tokenizers(getattr(engine, "catalog", None))
        ctx = StepContext(engine, self.tokenizers, pipeline.name)
        self.steps: list[QueryStep] = [step_class("query", s.name)(s.config, ctx) for s in pipeline.steps]

    def check(self, text: Any, max_tokens: Any, limit: Any, where: Any) -> None:
        if not isinstance(text, str) or not text.strip():
            raise PipelineError("query: expected a non-empty string", field="query")
        if len(text) > self.p.input.max_chars:
            raise PipelineError(f"query: {len(text)} characters exceeds input.max_chars ({self.p.input.max_chars})",
                                field="query")
        for name, value, top in (("max_tokens", max_tokens, 10_000_000), ("limit", limit, MAX_LIMIT)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= top):
                raise PipelineError(f"{name}: expected an integer in 1..{top}, got {value!r}", field=name)
        try:
            parse_where(where)
        except ConnectorError as e:
            raise PipelineError(e.message, field=e.field or "where") from None

    async def query(self, text: str, *, max_tokens: int | None = None, limit: int | None = None,
                    where: dict[str, Any] | None = None) -> dict[str, Any]:
        self.check(text, max_tokens, limit, where)
        options = {"max_tokens": max_tokens, "limit": limit, "where": where}
        state = QueryState(text)
        timing: dict[str, float] = {}
        started = time.perf_counter()
        for step in self.steps:
            t = time.perf_counter()
            try:
                await step.run(state, options)
            except ConnectorError as e:
                raise PipelineError(f"{step.name}: {e.message}", field=e.field, code=e.code, status=e.status) from None
            timing[step.name + "_ms"] = round((time.perf_counter() - t) * 1000, 3)
        timing["total_ms"] = round((time.perf_counter() - started) * 1000, 3)
        counter = self._counter()
        if state.tokens_after is None and counter is not None:
            state.tokens_before = sum(counter.count([h.text for h in state.retrieved]))
            state.tokens_after = sum(counter.count([h.text for h in state.hits]))
        counts = counter.count([h.text for h in state.hits]) if counter is not None else [None] * len(state.hits)
        budget = max_tokens or next((s.config.max_tokens for s in self.steps if s.name == "trim"), None)
        return {
            "pipeline": self.p.name, "query": text,
            "results": [{"id": h.id, "text": h.text, "score": h.score, "first_stage_score": h.first_stage_score,
                         "first_stage_rank": h.first_stage_rank, "rerank_score": h.rerank_score, "tokens": n,
                         "metadata": {k: v for k, v in h.metadata.items() if not k.startswith("_sie_")}}
                        for h, n in zip(state.hits, counts)],
            "retrieved": len(state.retrieved),
            "tokens": {"before": state.tokens_before, "after": state.tokens_after, "budget": budget},
            "rerank": state.notes.get("rerank"), "where": state.notes.get("where"),
            "entities": state.notes.get("entities"), "timing": timing,
        }

    def _counter(self) -> Any:
        trim = next((s for s in self.steps if s.name == "trim"), None)
        name = trim.config.tokenizer if trim else next((s.config.model for s in self.steps if s.name == "encode"),
                                                       None)
        if name is None:
            return None
        try:
            return self.tokenizers(name)
        except PipelineError:
            return None  # a remote engine's model without local weights: counts are unknown, not fatal

    def close(self) -> None:
        for step in self.steps:
            step.close()
