"""What every model kind is made of: a `load` that puts its head next to the runner, and its part of a
request — prepare (tokenize, on a tokenizer thread) → compute (its head over a batch's token states, on the
compute thread) → finish (per-request shaping of the raw rows).

Three families, by the primitive a card declares them under:
- `OutputKind` (encode: dense / sparse / multivector): one forward pass computes every output a request
  asks for, so the encode path (sie.runtime.encoding) drives them and each output kind adds its rows;
- `ScoreKind` (score) and `ExtractKind` (extract): each runs a whole request. Kinds with a head run it
  through `forward` (lease → prepare → batcher → finish); the others are built on encode requests
  (late-interaction, bi-encoder, similarity).
`Runtime` is what a kind may use of the engine during one call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from tokenizers import Tokenizer

from sie.catalog.card import ModelCard
from sie.errors import UnsupportedCapability
from sie.models.heads import ModelHeads, head_class
from sie.models.runner import Runner
from sie.runtime.results import ExtractedItem, ScoredItem, Timing
from sie.runtime.tokenizer import Tokenized

if TYPE_CHECKING:
    from sie.models.runner import PackedBatch
    from sie.runtime.batcher import Job, Lane, TokenBudgetBatcher
    from sie.runtime.loaded_model import LoadedModel
    from sie.runtime.pool import LruModelPool

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class HeadLoad:
    """What a kind's `load` may use. `head` loads a HEADS entry once per model: kinds naming the same head
    (cross-encoder and NLI: the sequence classifier) share it, and it is counted once."""

    folder: Path
    runner: Runner
    tokenizer: Tokenizer
    device: torch.device
    dtype: torch.dtype
    loaded: ModelHeads

    @property
    def config(self):
        return self.runner.config

    def head(self, name: str, load: Callable[[type], object]) -> Any:
        if name not in self.loaded.heads:
            self.loaded.heads[name] = load(head_class(name))
        return self.loaded.heads[name]

    def ids(self, values: list[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=self.device)


@dataclass
class Plan:
    """One request's work for the batcher, and what finishing it needs."""

    work: str                   # the batcher's label for it: "encode" | "score" | "extract"
    key: tuple                  # sequences of one key may share a batch
    seqs: list[Tokenized]
    metas: list[Any]            # per sequence; each has `kinds(card)`: the kinds whose heads a batch runs
    context: Any = None         # what finish needs besides the rows (GLiNER: each text's words)


@dataclass(frozen=True)
class KindMeta:
    """The meta of a sequence that asks one kind's head and carries nothing else."""

    kind: str

    def kinds(self, card: ModelCard) -> tuple[str, ...]:
        return (self.kind,)


@dataclass(frozen=True)
class Runtime:
    """What a kind may use of the engine during one call: the model pool, the tokenizer threads and the
    batcher, scheduled on the call's lane, deadline and admission."""

    pool: LruModelPool
    batcher: TokenBudgetBatcher
    tokenizing: Callable[[LoadedModel, Callable[[], Any], Lane, bool], Awaitable[tuple[Any, float]]]
    lane: Lane
    schedule: dict = field(default_factory=dict)   # the batcher's lane / deadline / wait

    async def acquire(self, card: ModelCard):
        return await self.pool.acquire(card.name)

    async def prepare(self, loaded: LoadedModel, work: Callable[[], T]) -> tuple[T, float]:
        """`work` on the lane's tokenizer threads (work with a deadline: on its own); its result and the
        seconds it took. A caller that is refused when the lane is full is refused before it is tokenized."""
        if not self.schedule.get("wait", True):
            self.batcher.refuse_early(loaded, self.lane, self.schedule.get("deadline"))
        return await self.tokenizing(loaded, work, self.lane, self.schedule.get("deadline") is not None)

    async def run(self, loaded: LoadedModel, plan: Plan) -> Job:
        return await self.batcher.run(loaded, plan.work, plan.key, plan.seqs, plan.metas, **self.schedule)


def timing(job: Job | None, i: int, tokenize_s: float) -> Timing:
    if job is None:  # nothing ran on the model (inference-free sparse queries)
        return Timing(queue_ms=0.0, tokenize_ms=round(tokenize_s * 1000, 3), compute_ms=0.0)
    return Timing(queue_ms=round(job.queue_seconds[i] * 1000, 3), tokenize_ms=round(tokenize_s * 1000, 3),
                  compute_ms=round(job.compute_seconds[i] * 1000, 3))


async def forward(rt: Runtime, card: ModelCard, prepare: Callable[[LoadedModel], Plan],
                  finish: Callable[[LoadedModel, Plan, list[Any], list[Timing]], R]) -> R:
    """A request through the model: lease it, prepare on a tokenizer thread, queue the sequences in the
    batcher, finish the rows (while the lease holds the model: finishing may read its heads' labels)."""
    async with await rt.acquire(card) as loaded:
        plan, tokenize_s = await rt.prepare(loaded, lambda: prepare(loaded))
        job = await rt.run(loaded, plan)
        return finish(loaded, plan, job.results, [timing(job, i, tokenize_s) for i in range(len(plan.seqs))])


class Kind:
    """One kind a card can declare (`name`, as the card spells it)."""

    name: ClassVar[str]
    heads: ClassVar[tuple[str, ...]] = ()    # the HEADS entries `load` loads
    row: ClassVar[str] = ""                  # the key of its values in a computed row
    head_role: ClassVar[str] = ""            # how a missing head is named in errors

    def load(self, card: ModelCard, at: HeadLoad) -> object | None:
        """What this kind keeps next to the runner (ModelHeads.kinds[name]); None: nothing."""
        return None

    def compute(self, loaded: LoadedModel, hidden: torch.Tensor, batch: PackedBatch, metas: list[Any]) -> list:
        """One value per packed sequence of `batch` from its token states (compute thread)."""
        raise NotImplementedError(f"kind '{self.name}' runs no head on token states")

    def state(self, loaded: LoadedModel) -> Any:
        """What `load` kept for this kind on `loaded`."""
        found = loaded.heads.kinds.get(self.name)
        if found is None:
            raise UnsupportedCapability(f"model: '{loaded.card.name}' has no {self.head_role or self.name} head",
                                        field="model")
        return found


class OutputKind(Kind):
    """An encode output; `row` is its EncodedItem field (dense / sparse / multivector). The encode path
    (sie.runtime.encoding) asks each output a request names."""

    vector_options: ClassVar[bool] = False   # dims / dtype / normalize shape this output
    role_sensitive: ClassVar[bool] = False   # queries and documents differ after the forward pass
    shapes_sequences: ClassVar[bool] = False  # its declaration changes how every encode input is tokenized

    def validate(self, card: ModelCard, ask: Any) -> None:
        """Refuse request options this output cannot honour (before anything is tokenized)."""

    def computed(self, card: ModelCard, is_query: bool) -> bool:
        """Whether the forward pass computes it (False: `without_model` does)."""
        return True

    def sequences(self, card: ModelCard, tokenizer, texts: list[str], *, is_query: bool) -> list[Tokenized]:
        """The encode inputs of a card that declares this output (when `shapes_sequences`)."""
        return tokenizer.encode(texts)

    def without_model(self, loaded: LoadedModel, seqs: list[Tokenized]) -> list:
        raise NotImplementedError(f"output '{self.name}' is always computed by the model")

    def finish(self, card: ModelCard, tokenizer, rows: list, ask: Any) -> list:
        """Per-request shaping of every item's raw value (after the lease: the model may be evicted)."""
        return rows


class ScoreKind(Kind):
    async def score(self, rt: Runtime, card: ModelCard, query: str, texts: list[str], *, top_k: int | None,
                    instruction: str | None) -> list[ScoredItem]:
        raise NotImplementedError


@dataclass(frozen=True)
class ExtractAsk:
    """One extract request's validated options."""

    labels: list[str]
    threshold: float
    flat: bool = True
    multi_label: bool = False


class ExtractKind(Kind):
    needs_labels: ClassVar[bool] = False   # zero-shot: a request without labels (and a card without) is refused
    classifies: ClassVar[bool] = False     # classifications per text (else entities)

    async def extract(self, rt: Runtime, card: ModelCard, texts: list[str], ask: ExtractAsk) -> list[ExtractedItem]:
        raise NotImplementedError


class ForwardExtractKind(ExtractKind):
    """An extract kind with a head: prepare → the batcher → finish."""

    def prepare(self, loaded: LoadedModel, texts: list[str], labels: list[str]) -> Plan:
        raise NotImplementedError

    def finish(self, loaded: LoadedModel, plan: Plan, texts: list[str], rows: list[dict], ask: ExtractAsk,
               timings: list[Timing]) -> list[ExtractedItem]:
        raise NotImplementedError

    async def extract(self, rt: Runtime, card: ModelCard, texts: list[str], ask: ExtractAsk) -> list[ExtractedItem]:
        return await forward(rt, card, lambda loaded: self.prepare(loaded, texts, ask.labels),
                             lambda loaded, plan, rows, timings: self.finish(loaded, plan, texts, rows, ask, timings))
