"""`rerank`: a score model reorders the first-stage candidates in one batched call. If it does not answer
within `timeout_ms` (or what is left of the query's deadline, if less), or fails, the first-stage order
stands and the answer says why: an agent gets results late or worse, never none. On a timeout the call
is cancelled with its budget, so its queued work leaves the engine's queue instead of computing for nobody.

    - rerank: {model: cross-encoder/ms-marco-MiniLM-L-6-v2, top_k: 10, timeout_ms: 1500}
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from pipelines.steps.base import QueryState, QueryStep, StepConfig
from pipelines.steps.rules import After, Once, named
from sie.errors import DeadlineExceeded, SieError


class RerankConfig(StepConfig):
    model: str = Field(min_length=1)
    top_k: int | None = Field(None, gt=0, description="Keep the best k after reranking.")
    candidates: int | None = Field(None, gt=0, description="Rerank only the first n candidates "
                                                           "(the rest follow, in first-stage order).")
    timeout_ms: int = Field(2000, gt=0, le=600_000, description="Fall back to first-stage order after this.")
    instruction: str | None = None

    def models(self) -> list[tuple[str, str, str]]:
        return [("model", self.model, "score")]

    def deadline_allowance_ms(self) -> int:
        return self.timeout_ms


class RerankStep(QueryStep):
    name = "rerank"
    config_class = RerankConfig
    uses_model = True
    rules = (Once("only one rerank step per query pipeline"),
             After(named("search"), "rerank works on search results: put it after steps[{other}]"))

    def budget_s(self, state: QueryState) -> float:
        left = state.left_s()
        own = self.config.timeout_ms / 1000
        return own if left is None else min(own, left)

    async def run(self, state: QueryState, options: dict[str, Any]) -> None:
        c: RerankConfig = self.config
        head = state.hits[: c.candidates] if c.candidates else list(state.hits)
        tail = state.hits[len(head):]
        started = time.perf_counter()
        note: dict[str, Any] = {"model": c.model, "candidates": len(head)}
        state.notes["rerank"] = note
        if not head:
            note["status"] = "skipped"
            return
        options_ = {"instruction": c.instruction} if c.instruction else {}
        try:
            scored = await self.ctx.engine.score(c.model, state.text, [h.text for h in head], **options_,
                                                 **self.engine_options(state))
        except DeadlineExceeded:
            raise  # the query runner calls on_deadline
        except SieError as e:
            note.update(status="error", message=f"{e.code}: {e.message}; first-stage order kept")
        else:
            reordered = []
            for item in scored:
                candidate = head[item.index]
                candidate.rerank_score = candidate.score = float(item.score)
                reordered.append(candidate)
            state.hits = reordered + tail
            note["status"] = "ok"
        self._finish(state, (time.perf_counter() - started) * 1000)

    def on_deadline(self, state: QueryState, elapsed_ms: float) -> None:
        note = state.notes.setdefault("rerank", {"model": self.config.model})
        left = state.left_s()
        limit = (f"the query's deadline_ms ({state.deadline_ms} ms)" if left is not None and left < 0.001
                 else f"{self.config.timeout_ms} ms")
        note.update(status="timeout", message=f"no answer within {limit}; first-stage order kept")
        self._finish(state, elapsed_ms)

    def _finish(self, state: QueryState, elapsed_ms: float) -> None:
        state.notes["rerank"]["ms"] = round(elapsed_ms, 3)
        if self.config.top_k is not None:
            state.hits = state.hits[: self.config.top_k]
