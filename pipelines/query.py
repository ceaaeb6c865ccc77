"""Query pipelines: a question in, the chunks an agent should read out, with what that costs.

    runner = QueryRunner(pipeline, engine)
    answer = await runner.query("how do I rotate keys?", max_tokens=2000)
    answer["results"]          # [{id, text, score, first_stage_score, rerank_score, metadata, tokens}]
    answer["tokens"]           # {"before": 9120, "after": 1987, "budget": 2000}: the context saved

`tokens.before` counts every retrieved candidate, `tokens.after` what is returned (with the trim step's
tokenizer, else the encode model's). Reserved `_sie_*` metadata keys are left out of the answer.

A query has an end-to-end deadline (`deadline_ms` in the pipeline, or per query; default: the rerank
step's `timeout_ms` plus FIRST_STAGE_MS). Each step gets what is left (rerank: at most its own
`timeout_ms`) and each engine call carries it, in the interactive lane, so expired work leaves the
engine's queue. A step that runs out answers with what the query has: rerank keeps the first-stage order;
a step without which there is nothing to answer with (the query's encode, the search) fails the query
with a 504 `deadline_exceeded` naming that step.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from connectors.errors import ConnectorError
from connectors.filters import parse_where
from pipelines.errors import PipelineError
from pipelines.spec import Pipeline
from pipelines.steps import step_class
from pipelines.steps.base import QueryState, QueryStep, StepContext
from pipelines.tokenizers import Tokenizers
from sie.errors import DeadlineExceeded

MAX_LIMIT = 10_000
MAX_DEADLINE_MS = 600_000
# The default allowance for everything before the rerank (query encode, extract_filters, search). It is a
# backstop, not a target: an interactive call waits at most the batch already on the device plus its own
# (a 2048-token MiniLM batch: ~0.7 s on one CPU thread), but a sink's first search opens it (LanceDB's first
# took over 2 s on a loaded 2-core machine, which failed a 2 s allowance), so 10 s.
FIRST_STAGE_MS = 10_000


def default_deadline_ms(pipeline: Pipeline) -> int:
    """The pipeline's `deadline_ms`, else the first-stage allowance plus what the steps with their own
    timeout add (the rerank step's `timeout_ms`)."""
    if pipeline.deadline_ms is not None:
        return pipeline.deadline_ms
    return FIRST_STAGE_MS + sum(s.config.deadline_allowance_ms() for s in pipeline.steps)


class QueryRunner:
    def __init__(self, pipeline: Pipeline, engine: Any, *, tokenizers: Tokenizers | None = None) -> None:
        if pipeline.kind != "query":
            raise PipelineError(f"pipeline {pipeline.name!r} is an ingest pipeline; use `sie run`", field="kind")
        self.p = pipeline
        self.tokenizers = tokenizers or Tokenizers(engine)
        ctx = StepContext(engine, self.tokenizers, pipeline.name)
        self.steps: list[QueryStep] = [step_class("query", s.name)(s.config, ctx) for s in pipeline.steps]
        self.deadline_ms = default_deadline_ms(pipeline)

    def check(self, text: Any, max_tokens: Any, limit: Any, where: Any, deadline_ms: Any = None) -> None:
        if not isinstance(text, str) or not text.strip():
            raise PipelineError("query: expected a non-empty string", field="query")
        if len(text) > self.p.input.max_chars:
            raise PipelineError(f"query: {len(text)} characters exceeds input.max_chars ({self.p.input.max_chars})",
                                field="query")
        for name, value, top in (("max_tokens", max_tokens, 10_000_000), ("limit", limit, MAX_LIMIT),
                                 ("deadline_ms", deadline_ms, MAX_DEADLINE_MS)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= top):
                raise PipelineError(f"{name}: expected an integer in 1..{top}, got {value!r}", field=name)
        try:
            parse_where(where)
        except ConnectorError as e:
            raise PipelineError(e.message, field=e.field or "where") from None

    async def query(self, text: str, *, max_tokens: int | None = None, limit: int | None = None,
                    where: dict[str, Any] | None = None, deadline_ms: int | None = None) -> dict[str, Any]:
        """`deadline_ms` overrides the pipeline's end-to-end budget for this query."""
        self.check(text, max_tokens, limit, where, deadline_ms)
        options = {"max_tokens": max_tokens, "limit": limit, "where": where}
        budget_ms = deadline_ms or self.deadline_ms
        state = QueryState(text, deadline=time.monotonic() + budget_ms / 1000, deadline_ms=budget_ms)
        timing: dict[str, float] = {}
        started = time.perf_counter()
        for step in self.steps:
            t = time.perf_counter()
            try:
                await asyncio.wait_for(step.run(state, options), step.budget_s(state))
            except (TimeoutError, DeadlineExceeded):  # our timer, or the engine's (a remote one)
                step.on_deadline(state, (time.perf_counter() - t) * 1000)
            except ConnectorError as e:
                raise PipelineError(f"{step.name}: {e.message}", field=e.field, code=e.code) from None
            timing[step.name + "_ms"] = round((time.perf_counter() - t) * 1000, 3)
        counter = self._counter()
        counts: list[int | None] = [None] * len(state.hits)
        if counter is not None:
            t = time.perf_counter()
            counts = list(await counter.count_async([h.text for h in state.hits], state.counting_ms()))
            if state.tokens_after is None:
                state.tokens_before = sum(await counter.count_async([h.text for h in state.retrieved],
                                                                    state.counting_ms()))
                state.tokens_after = sum(counts)
            timing["count_ms"] = round((time.perf_counter() - t) * 1000, 3)
        timing["total_ms"] = round((time.perf_counter() - started) * 1000, 3)
        budget = max_tokens or next((b for s in self.steps if (b := s.config.token_budget()) is not None), None)
        return {
            "pipeline": self.p.name, "query": text,
            "results": [{"id": h.id, "text": h.text, "score": h.score, "first_stage_score": h.first_stage_score,
                         "first_stage_rank": h.first_stage_rank, "rerank_score": h.rerank_score, "tokens": n,
                         "metadata": {k: v for k, v in h.metadata.items() if not k.startswith("_sie_")}}
                        for h, n in zip(state.hits, counts)],
            "retrieved": len(state.retrieved),
            "tokens": {"before": state.tokens_before, "after": state.tokens_after, "budget": budget},
            "rerank": state.notes.get("rerank"), "where": state.notes.get("where"),
            "entities": state.notes.get("entities"), "timing": timing, "deadline_ms": budget_ms,
        }

    def _counter(self) -> Any:
        """The tokenizer a step counts tokens with (trim's), else the model the query was encoded with."""
        declared = [name for s in self.steps for _, name, need in s.config.models() if need == "tokenizer"]
        encoders = [e[1] for s in self.steps if (e := s.config.encoder())]
        name = next(iter(declared + encoders), None)
        if name is None:
            return None
        try:
            return self.tokenizers(name)
        except PipelineError:
            return None  # a model whose tokenizer the engine cannot load: counts are unknown, not fatal

    def close(self) -> None:
        for step in self.steps:
            step.close()
