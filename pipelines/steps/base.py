"""What steps are: a named, registered transformation configured from YAML by a pydantic model whose
unknown keys are errors. Ingest steps turn a list of chunks into a list of chunks; query steps update a
query's state. Models are reached only through the Engine protocol, in the step's context.

Engine calls are scheduled by the kind of step: ingest steps run in the engine's `batch` lane (bulk work),
query steps in the `interactive` lane with what is left of the query's deadline as `timeout_ms`."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from pipelines.errors import PipelineError
from sie.protocol import EngineProtocol

#: Engine options of every ingest step's calls: bulk work waits behind query-time work.
BULK: dict[str, Any] = {"priority": "batch"}


class StepConfig(BaseModel):
    """Base of every step's config: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def models(self) -> list[tuple[str, str, str]]:
        """(config key, model name, what it must do: encode | score | extract | tokenizer) for `sie plan`."""
        return []


@dataclass(slots=True)
class Chunk:
    """One piece of one source on its way to the sinks; `index` is its position in the source."""

    source_id: str
    index: int
    text: str
    start: int          # character offsets into the source's text
    end: int
    metadata: dict[str, Any]
    vectors: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepContext:
    engine: EngineProtocol
    tokenizer: Callable[[str], Any]     # model name -> pipelines.tokenizers.TokenCounter
    pipeline: str


class IngestStep(ABC):
    name: ClassVar[str]
    config_class: ClassVar[type[StepConfig]]
    #: True for steps that call a model: the runner batches chunks of several sources before them.
    uses_model: ClassVar[bool] = False

    def __init__(self, config: StepConfig, ctx: StepContext) -> None:
        self.config = config
        self.ctx = ctx

    @abstractmethod
    def apply(self, chunks: list[Chunk]) -> list[Chunk]:
        """The chunks after this step (chunks of one source are never split across calls)."""


@dataclass
class QueryState:
    """A query on its way through a query pipeline."""

    text: str
    where: dict[str, Any] | None = None
    vectors: dict[str, Any] = field(default_factory=dict)
    hits: list[Any] = field(default_factory=list)            # Candidate, best first
    retrieved: list[Any] = field(default_factory=list)       # every Candidate the search returned
    tokens_before: int | None = None
    tokens_after: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)      # per-step facts for the answer (rerank status...)
    deadline: float | None = None                            # time.monotonic() by which the answer is due
    deadline_ms: int | None = None                           # the budget that deadline came from

    def left_s(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


class QueryStep(ABC):
    name: ClassVar[str]
    config_class: ClassVar[type[StepConfig]]
    #: False for steps that wait on nothing (local CPU work such as trim): they run even when the deadline
    #: has passed, so an answer that fell back (first-stage order) is still shaped as asked.
    bounded: ClassVar[bool] = True

    def __init__(self, config: StepConfig, ctx: StepContext) -> None:
        self.config = config
        self.ctx = ctx

    @abstractmethod
    async def run(self, state: QueryState, options: dict[str, Any]) -> None:
        """Update `state`; `options` are the caller's per-query overrides (max_tokens, limit, where)."""

    def budget_s(self, state: QueryState) -> float | None:
        """Seconds this step may take: what is left of the query's deadline (None: unbounded)."""
        return state.left_s() if self.bounded else None

    def engine_options(self, state: QueryState) -> dict[str, Any]:
        """Scheduling options of this step's engine calls: the interactive lane, and the step's budget so
        the engine drops the work when it runs out."""
        budget = self.budget_s(state)
        return {"priority": "interactive", **({} if budget is None else {"timeout_ms": max(1.0, budget * 1000)})}

    def on_deadline(self, state: QueryState, elapsed_ms: float) -> None:
        """The step ran out of its budget. Default: nothing usable, so the query fails naming this step."""
        raise PipelineError(f"{self.name}: the query's deadline_ms ({state.deadline_ms} ms) ran out during this "
                            f"step, after {elapsed_ms:.0f} ms in it; nothing usable to answer with",
                            field="deadline_ms", code="deadline_exceeded")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the step opened (a sink)."""


@dataclass(slots=True)
class Candidate:
    """A retrieved chunk; `score` is its current score (the reranker's once reranked)."""

    id: str
    text: str
    metadata: dict[str, Any]
    score: float
    first_stage_score: float
    first_stage_rank: int
    rerank_score: float | None = None
