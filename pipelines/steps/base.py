"""What steps are: a named, registered transformation configured from YAML by a pydantic model whose
unknown keys are errors. Ingest steps turn a list of chunks into a list of chunks; query steps update a
query's state. Models are reached only through the Engine protocol, in the step's context.

A step also says what the rest of the pipelines room needs to know about it, so nothing outside the step
registry names a step: its config declares what the step makes (record vectors, metadata keys), the models
and sinks it uses and the defaults it takes from the pipeline; its class declares where it may stand
(`rules`, pipelines.steps.rules) and whether it calls a model. The spec, `sie plan`, the sinks' schema and
the runners read these declarations only.

Engine calls are scheduled by the kind of step: ingest steps run in the engine's `batch` lane (bulk work),
query steps in the `interactive` lane with what is left of the query's deadline as `timeout_ms`."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from pipelines.errors import PipelineError
from sie.protocol import EngineProtocol

if TYPE_CHECKING:
    from pipelines.steps.rules import Rule

#: Engine options of every ingest step's calls: bulk work waits behind query-time work.
BULK: dict[str, Any] = {"priority": "batch"}


@dataclass(frozen=True)
class VectorOutput:
    """A record vector a step makes, as the sinks' schema holds it."""

    spec: dict[str, Any]    # kind, dim (None until the model is known), distance, idf: a connectors VectorSpec
    key: str                # the config key that names it ("outputs.sparse"): "made by steps[0].encode.outputs.sparse"
    field: str              # the config field a problem with its name points at ("outputs")

    @property
    def kind(self) -> str:
        return str(self.spec["kind"])


@dataclass(frozen=True)
class VectorSearch:
    """A step searches a sink with vectors made by the steps before it."""

    sink_key: str                    # the config key holding the sink (one of the config's `sink_keys`)
    sink: dict[str, Any]             # that sink's config
    key: str                         # the config key naming the vectors searched
    names: tuple[str, ...] = ()      # as named there; empty: every vector made before the step


class StepConfig(BaseModel):
    """Base of every step's config: frozen, unknown keys refused. The methods below are the step's
    declarations; each default says "nothing of the kind"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Config keys holding a connector's config (a sink the step reads): the connectors validate them and
    #: resolve their ${VAR}s (secrets included), so the spec leaves those to them.
    sink_keys: ClassVar[tuple[str, ...]] = ()

    def models(self) -> list[tuple[str, str, str]]:
        """(config key, model name, what it must do: encode | score | extract | tokenizer) for `sie plan`.
        An `encode` model is the one the step's vectors come from."""
        return []

    def model_problems(self, key: str, info: Any) -> list[tuple[str, str]]:
        """(config key, message) for what this step asks of the model under `key` beyond its capability,
        given its description (pipelines.models.ModelInfo): `sie plan` reports them."""
        return []

    def vector_outputs(self, info: Any = None) -> dict[str, VectorOutput]:
        """The record vectors this step makes, by name: they shape the sinks' schema. `info` describes the
        step's encode model; without it (the spec alone) the dimensions a model decides are None."""
        return {}

    def metadata_outputs(self) -> list[str]:
        """Metadata paths this step may write (`sie plan` shows them)."""
        return []

    def vector_search(self) -> VectorSearch | None:
        """The sink this step searches with vectors made before it: the spec checks they exist and that the
        sink can search them."""
        return None

    def tokenizer_default_key(self) -> str | None:
        """The config key that, left unset, takes the pipeline's default tokenizer (the model of its first
        step that makes vectors with one); None when the step needs none."""
        return None

    def deadline_allowance_ms(self) -> int:
        """Query steps: what this step adds to the query's default deadline (its own timeout); steps that fit
        in the first-stage allowance add nothing."""
        return 0

    def token_budget(self) -> int | None:
        """Query steps: the token budget this step packs the answer into (the answer reports it)."""
        return None

    def encoder(self) -> tuple[str, str] | None:
        """(config key, model name) of the model this step's vectors come from: its `encode` model."""
        return next(((key, name) for key, name, need in self.models() if need == "encode"), None)


def declares_vectors(config_class: type[StepConfig]) -> bool:
    """Whether steps with this config make record vectors (it declares `vector_outputs`)."""
    return config_class.vector_outputs is not StepConfig.vector_outputs


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
    embed_text: str | None = None   # what encode embeds when it differs from the stored text (prefix_section)


@dataclass
class StepContext:
    engine: EngineProtocol
    tokenizer: Callable[[str], Any]     # model name -> pipelines.tokenizers.TokenCounter
    pipeline: str


class Step(ABC):
    """What every step's class declares."""

    name: ClassVar[str]
    config_class: ClassVar[type[StepConfig]]
    #: True for steps that call a model: an ingest run batches chunks of several sources before the first one.
    uses_model: ClassVar[bool] = False
    #: Where the step may stand in a pipeline (pipelines.steps.rules); the spec checks them for every step.
    rules: ClassVar[tuple[Rule, ...]] = ()

    def __init__(self, config: StepConfig, ctx: StepContext) -> None:
        self.config = config
        self.ctx = ctx


class IngestStep(Step):
    @abstractmethod
    def apply(self, chunks: list[Chunk]) -> list[Chunk]:
        """The chunks after this step (chunks of one source are never split across calls)."""


#: See QueryState.counting_ms: ample for counting a page of hits on a thread nobody else queues on.
COUNTING_GRACE_MS = 1000.0


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

    def counting_ms(self) -> float | None:
        """`timeout_ms` for counting that shapes the answer (trim, the answer's token counts). With a deadline
        the engine counts on its deadline thread, not behind a flood in the interactive lane. Such counting
        must still run once the deadline has passed (an answer that fell back is still trimmed), and it
        waits behind nothing there, so it gets what is left of the budget but at least COUNTING_GRACE_MS."""
        left = self.left_s()
        return None if left is None else max(left * 1000, COUNTING_GRACE_MS)


class QueryStep(Step):
    #: False for steps that wait on nothing (local CPU work such as trim): they run even when the deadline
    #: has passed, so an answer that fell back (first-stage order) is still shaped as asked.
    bounded: ClassVar[bool] = True

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

    def close(self) -> None:  # an optional hook
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
