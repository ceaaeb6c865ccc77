"""The Engine facade: `encode`, `score`, `extract` over the catalog's models, shared by the server and
the pipelines (`sie.client` implements the same methods over HTTP).

A call: validate → lease the model from the pool (loading it if needed) → tokenize on a worker
thread → queue the sequences in the model's batcher (merged with other requests into token-budget
batches) → post-process per request (Matryoshka width, normalization, output dtype). What each step
does for a model is its card's kinds' (sie.runtime.kinds): the engine looks the card up once and hands
the call to them, with a `Runtime` of its pool, tokenizer threads and batcher.

Every call takes three scheduling options (nothing in a call blocks the event loop):
- `priority`: "interactive" (default: queries, rerank at query time) is batched ahead of "batch"
  (ingest runs, bulk work), which keeps a minimum share (see sie.runtime.batcher);
- `timeout_ms`: the caller's remaining budget; when it runs out the call raises DeadlineExceeded (504)
  and its queued sequences are dropped;
- `admission`: "wait" (default) awaits room in a full queue; "reject" raises QueueFull (429 with
  Retry-After), as the HTTP routes do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar

import torch

from sie.background_loop import BackgroundLoop
from sie.call_options import Admission, check_scheduling, reject_unknown
from sie.catalog import Catalog, ModelCard
from sie.config import Settings
from sie.errors import DeadlineExceeded, SieError, UnsupportedCapability
from sie.metrics import Metrics
from sie.runtime import encoding, extraction
from sie.runtime.allocator import keep_activation_memory
from sie.runtime.batcher import LANES, Lane, TokenBudgetBatcher
from sie.runtime.inputs import validate_texts
from sie.runtime.kinds import extract_kind, score_kind
from sie.runtime.kinds.base import ExtractAsk, Runtime
from sie.runtime.loaded_model import LoadedModel, estimate_footprint, load_model
from sie.runtime.local_models import LocalModels, card_listing
from sie.runtime.memory import device_budget, host_budget
from sie.runtime.pool import LruModelPool
from sie.runtime.results import EncodedItem, ExtractedItem, ScoredItem, TokenizedText

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """How one engine call is scheduled: its lane, its deadline (time.monotonic()) and its admission."""

    lane: Lane = "interactive"
    deadline: float | None = None
    timeout_ms: float | None = None
    wait: bool = True

    @classmethod
    def of(cls, priority: str, timeout_ms: float | None, admission: Admission) -> Call:
        lane, timeout_ms, wait = check_scheduling(priority, timeout_ms, admission)
        if timeout_ms is None:
            return cls(lane, wait=wait)
        return cls(lane, time.monotonic() + timeout_ms / 1000, timeout_ms, wait)

    def batcher(self) -> dict:
        return {"lane": self.lane, "deadline": self.deadline, "wait": self.wait}

    async def bounded(self, work: Awaitable[T], what: str) -> T:
        """`work` within the deadline; on expiry it is cancelled (its queued sequences dropped)."""
        if self.deadline is None:
            return await work
        try:
            return await asyncio.wait_for(work, max(0.0, self.deadline - time.monotonic()))
        except TimeoutError:
            raise DeadlineExceeded(f"deadline: {what} did not finish within timeout_ms={self.timeout_ms:g}; "
                                   f"its queued work was dropped", field="timeout_ms") from None


def resolve_device(name: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N'; a CUDA device this machine does not have fails here, at start-up."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SieError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}", field="device") from None
    if device.type not in ("cpu", "cuda"):
        raise SieError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}", field="device")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SieError(f"device: {name!r} requested but no CUDA device is usable here (torch {torch.__version__}, "
                           f"built for CUDA {torch.version.cuda or 'none'}); use --device cpu or auto",
                           field="device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SieError(f"device: {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) are "
                           "visible", field="device")
    return device


class Engine:
    def __init__(self, settings: Settings | None = None, catalog: Catalog | None = None) -> None:
        self.settings = s = settings or Settings.load()
        self.catalog = catalog or Catalog.from_dirs(*s.catalog_dirs, strict=s.strict_catalog)
        self._local = LocalModels(self.catalog, allow_downloads=s.allow_downloads)
        self.device = resolve_device(s.device)
        if s.threads:
            torch.set_num_threads(s.threads)
        if self.device.type == "cpu":
            keep_activation_memory()
        self.metrics = Metrics()
        self.pool = LruModelPool(
            self.catalog, self.device,
            loader=partial(load_model, device=self.device, allow_downloads=s.allow_downloads,
                           cpu_precision=s.cpu_precision, cpu_token_budget=s.cpu_token_budget),
            estimator=partial(estimate_footprint, device=self.device, allow_downloads=s.allow_downloads,
                              cpu_token_budget=s.cpu_token_budget),
            memory_budget=device_budget(self.device, s.memory_budget),
            host_budget=host_budget(self.device, s.host_memory_budget),
            pinned=tuple(s.pin), idle_timeout=s.idle_timeout, load_wait_timeout=s.load_wait_timeout,
            metrics=self.metrics)
        self.batcher = TokenBudgetBatcher(self.metrics, queue_capacity=s.queue_capacity,
                                          max_queue_wait=s.max_queue_wait, cross_request=s.batching,
                                          slice_seconds=s.batch_slice,
                                          evict_idle=lambda model: self.pool.evict_one_idle(exclude=model))
        # Tokenizer threads per lane: an interactive request is never tokenized behind a flood of bulk ones.
        self._tokenizers = {lane: ThreadPoolExecutor(s.tokenizer_threads, thread_name_prefix=f"sie-tokenize-{lane}")
                            for lane in LANES}
        # Work with a deadline (a query pipeline's calls) is tokenized on its own thread: behind a flood of
        # its lane's requests it would wait longer than its whole budget before reaching the batcher.
        self._tokenizers["deadline"] = ThreadPoolExecutor(1, thread_name_prefix="sie-tokenize-deadline")
        self._sync = BackgroundLoop("sie-engine-sync")

    # -- models -----------------------------------------------------------------------------------
    def card(self, name: str) -> ModelCard:
        return self.catalog.get(name)

    def model(self, name: str) -> LoadedModel:
        """The loaded model for `name` (loads it if needed). For inspection; requests use leases."""
        with self.pool.acquire_sync(name) as loaded:
            return loaded

    def preload(self) -> None:
        """Load the configured preload and pin lists (blocking)."""
        for name in dict.fromkeys([*self.settings.pin, *self.settings.preload]):
            self.pool.load(name)

    async def models(self) -> list[dict[str, Any]]:
        return self.models_sync()

    def models_sync(self) -> list[dict[str, Any]]:
        """Every card with its state in the pool and its queue depth: the data of GET /v1/models."""
        depths = self.batcher.depths()
        return [self._info(card, self.pool.state(card.name), depths.get(card.name, 0)) for card in self.catalog]

    def model_info(self, name: str) -> dict[str, Any]:
        """One model as `models()` lists it."""
        card = self.catalog.get(name)
        return self._info(card, self.pool.state(card.name), self.batcher.depth(card.name))

    def model_state(self, name: str) -> dict[str, Any]:
        """Where `name` is in the pool (state, bytes, requests in flight, precision, last load error)."""
        return self.pool.state(self.catalog.get(name).name)

    @staticmethod
    def _info(card: ModelCard, state: dict[str, Any], depth: int) -> dict[str, Any]:
        return {**card_listing(card), "queue_depth": depth, **state}

    def memory(self) -> dict[str, dict[str, int]]:
        """Per tier (device, host): the LRU budget and the bytes resident models hold."""
        return self.pool.usage()

    def load_model(self, name: str) -> dict[str, Any]:
        """Load (or retry a failed load of) `name` and wait (blocking); its state afterwards."""
        return self.pool.load(name)

    def unload_model(self, name: str) -> dict[str, Any]:
        """Drop `name` from every tier (ModelBusy while it has work in flight); its state afterwards."""
        return self.pool.unload(name)

    # -- tokens -----------------------------------------------------------------------------------
    async def count_tokens(self, model: str, texts: list[str], *, add_special_tokens: bool = True,
                           priority: Lane = "interactive", timeout_ms: float | None = None,
                           **unknown: Any) -> list[int]:
        """Tokens per text, untruncated, as the model's tokenizer counts them (see sie.runtime.local_models)."""
        reject_unknown("count_tokens", unknown)
        done = await self._counted("count_tokens", priority, timeout_ms, partial(
            self._local.tokenize_now, model, texts, add_special_tokens=add_special_tokens))
        return [t.tokens for t in done]

    async def tokenize(self, model: str, texts: list[str], *, add_special_tokens: bool = True,
                       return_ids: bool = False, return_offsets: bool = False, priority: Lane = "interactive",
                       timeout_ms: float | None = None, **unknown: Any) -> list[TokenizedText]:
        """As count_tokens, plus each text's token ids and character spans when asked for."""
        reject_unknown("tokenize", unknown)
        return await self._counted("tokenize", priority, timeout_ms, partial(
            self._local.tokenize_now, model, texts, add_special_tokens=add_special_tokens, return_ids=return_ids,
            return_offsets=return_offsets))

    async def _counted(self, what: str, priority: str, timeout_ms: float | None,
                       work: Callable[[], list[TokenizedText]]) -> list[TokenizedText]:
        """Counting work on the lane's tokenizer threads; with a deadline on the deadline thread, bounded by it."""
        call = Call.of(priority, timeout_ms, "wait")
        threads = "deadline" if call.deadline is not None else call.lane
        return await call.bounded(self._on_tokenizer_threads(threads, work), what)

    def count_tokens_sync(self, model: str, texts: list[str], **options: Any) -> list[int]:
        return self._sync.run(self.count_tokens(model, texts, **options))

    def tokenize_sync(self, model: str, texts: list[str], **options: Any) -> list[TokenizedText]:
        return self._sync.run(self.tokenize(model, texts, **options))

    async def _on_tokenizer_threads(self, lane: Lane | Literal["deadline"], work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._tokenizers[lane], work)

    # -- encode -----------------------------------------------------------------------------------
    async def encode(self, model: str, items: list[str], *, is_query: bool = False, dims: int | None = None,
                     dtype: str = "float32", normalize: bool | None = None, instruction: str | None = None,
                     output_types: list[str] | None = None, sparse_top_k: int | None = None,
                     sparse_tokens: bool = False, admission: Admission = "wait", priority: Lane = "interactive",
                     timeout_ms: float | None = None, **unknown: Any) -> list[EncodedItem]:
        """`output_types`: any of dense / sparse / multivector the card offers, from one forward pass
        (default: the card's first). `sparse_top_k` caps sparse entries (card default), `sparse_tokens`
        adds each entry's vocabulary string."""
        reject_unknown("encode", unknown)
        call = Call.of(priority, timeout_ms, admission)
        return await call.bounded(self._encode(model, items, call, is_query=is_query, dims=dims, dtype=dtype,
                                               normalize=normalize, instruction=instruction,
                                               output_types=output_types, sparse_top_k=sparse_top_k,
                                               sparse_tokens=sparse_tokens), f"encode on '{model}'")

    async def _encode(self, model: str, items: list[str], call: Call, **options) -> list[EncodedItem]:
        return await encoding.encode(self._runtime(call), self.catalog.get(model), items,
                                     encoding.EncodeAsk(**options))

    def encode_sync(self, model: str, items: list[str], **options) -> list[EncodedItem]:
        """Blocking convenience for scripts and pipelines; same code path as `encode`."""
        return self._sync.run(self.encode(model, items, **options))

    # -- score / extract ----------------------------------------------------------------------------
    async def score(self, model: str, query: str, items: list[str], *, top_k: int | None = None,
                    instruction: str | None = None, admission: Admission = "wait", priority: Lane = "interactive",
                    timeout_ms: float | None = None, **unknown: Any) -> list[ScoredItem]:
        """Relevance of each item to `query`, sorted best first (cross-encoder, yes/no decoder, late
        interaction, bi-encoder), with each item's original index and rank."""
        reject_unknown("score", unknown)
        call = Call.of(priority, timeout_ms, admission)
        return await call.bounded(self._score(model, query, items, call, top_k=top_k, instruction=instruction),
                                  f"score on '{model}'")

    async def _score(self, model: str, query: str, items: list[str], call: Call, *, top_k: int | None,
                     instruction: str | None) -> list[ScoredItem]:
        card = self.catalog.get(model)
        if card.capabilities.score is None:
            raise UnsupportedCapability(f"model: '{card.name}' has no score capability; pick a reranker "
                                        f"(see `sie models`)", field="model")
        texts = validate_texts(items)
        query = validate_texts([query], field="query")[0]
        encoding.validate_top_k(top_k, "top_k")
        return await score_kind(card).score(self._runtime(call), card, query, texts, top_k=top_k,
                                            instruction=instruction)

    async def extract(self, model: str, items: list[str], *, labels: list[str] | None = None,
                      threshold: float | None = None, flat: bool = True, multi_label: bool = False,
                      admission: Admission = "wait", priority: Lane = "interactive",
                      timeout_ms: float | None = None, **unknown: Any) -> list[ExtractedItem]:
        """Entities (GLiNER zero-shot spans, token-classification tags) or classifications (NLI zero-shot)."""
        reject_unknown("extract", unknown)
        call = Call.of(priority, timeout_ms, admission)
        return await call.bounded(self._extract(model, items, call, labels=labels, threshold=threshold, flat=flat,
                                                multi_label=multi_label), f"extract on '{model}'")

    async def _extract(self, model: str, items: list[str], call: Call, *, labels: list[str] | None,
                       threshold: float | None, flat: bool, multi_label: bool) -> list[ExtractedItem]:
        card = self.catalog.get(model)
        spec = extraction.capability(card)
        texts = validate_texts(items)
        kind = extract_kind(card)
        ask = ExtractAsk(extraction.request_labels(spec, labels, kind), extraction.request_threshold(spec, threshold),
                         flat=flat, multi_label=multi_label)
        return await kind.extract(self._runtime(call), card, texts, ask)

    def score_sync(self, model: str, query: str, items: list[str], **options) -> list[ScoredItem]:
        return self._sync.run(self.score(model, query, items, **options))

    def extract_sync(self, model: str, items: list[str], **options) -> list[ExtractedItem]:
        return self._sync.run(self.extract(model, items, **options))

    # -- plumbing ---------------------------------------------------------------------------------
    def _runtime(self, call: Call) -> Runtime:
        """What the kinds of one call may use: the pool, the tokenizer threads and the batcher, on its schedule."""
        return Runtime(self.pool, self.batcher, self._prepare, call.lane, call.batcher())

    async def _prepare(self, loaded: LoadedModel, prepare: Callable[[], T],
                       lane: Lane = "interactive", deadline: bool = False) -> tuple[T, float]:
        """Run tokenization work on the lane's tokenizer threads (with a deadline: the deadline thread);
        returns its result and the seconds it took."""
        start = time.monotonic()
        result = await self._on_tokenizer_threads("deadline" if deadline else lane, prepare)
        elapsed = time.monotonic() - start
        self.metrics.phase_seconds.labels(loaded.card.name, "tokenize").observe(elapsed)
        return result, elapsed

    def close(self) -> None:
        self.batcher.close()
        self.pool.close()
        for tokenizers in self._tokenizers.values():
            tokenizers.shutdown(wait=False, cancel_futures=True)
        self._sync.close()

