"""Cross-request batching: per-model bounded queues, token-budget batches, one compute thread per device.

A request's sequences enter its model's queue longest first. A former thread picks the model whose
oldest sequence has waited longest and cuts a batch of compatible sequences (same kind of work)
up to the model's token budget; it forms the next batch while the compute thread runs the current
one, and the compute thread tops a batch up with anything that arrived meanwhile. Batches form
whenever the device is free (continuous batching): no timer adds latency to a lone request.

A full queue refuses new work with 429 and a Retry-After from the model's measured throughput.
Sequences of cancelled requests (client gone) are dropped before compute. Out of memory during a
batch: evict an idle model and retry, then split the batch, then fail that batch only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import torch

from sie.errors import QueueFull, ResourceExhausted, SieError
from sie.metrics import Metrics
from sie.runtime.compute import COMPUTE
from sie.runtime.loaded_model import LoadedModel
from sie.runtime.tokenizer import Tokenized

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """One request's work for one model; resolves when every sequence has a result."""

    loaded: LoadedModel
    kind: str
    key: Hashable
    seqs: list[Tokenized]
    metas: list[Any]
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    results: list[Any] = field(default_factory=list)
    queue_seconds: list[float] = field(default_factory=list)
    compute_seconds: list[float] = field(default_factory=list)
    remaining: int = 0
    enqueued: float = 0.0
    cancelled: bool = False

    @property
    def model(self) -> str:
        return self.loaded.card.name


@dataclass(eq=False)
class _Piece:
    job: Job
    index: int
    tokens: int


@dataclass(eq=False)
class _Batch:
    model: str
    key: Hashable
    pieces: list[_Piece]
    tokens: int


def is_out_of_memory(e: BaseException) -> bool:
    if isinstance(e, torch.OutOfMemoryError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text)


class TokenBudgetBatcher:
    def __init__(self, metrics: Metrics, *, queue_capacity: int = 4096, max_queue_wait: float | None = None,
                 cross_request: bool = True,
                 evict_idle: Callable[[str], bool] = lambda model: False,
                 compute: dict[str, Callable] = COMPUTE) -> None:
        self.metrics = metrics
        self.queue_capacity = queue_capacity
        self.max_queue_wait = max_queue_wait
        self._queued_tokens: dict[str, int] = {}
        self.cross_request = cross_request
        self._evict_idle = evict_idle
        self._compute = compute
        self._queues: dict[str, deque[_Piece]] = {}
        self._tokens_per_s: dict[str, float] = {}
        self._cv = threading.Condition()
        self._ready: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        self._closed = False
        self._former = threading.Thread(target=self._form_forever, name="sie-batch-former", daemon=True)
        self._worker = threading.Thread(target=self._compute_forever, name="sie-compute", daemon=True)
        self._former.start()
        self._worker.start()

    # -- submitting -------------------------------------------------------------------------------
    def submit(self, loaded: LoadedModel, kind: str, key: Hashable, seqs: list[Tokenized], metas: list[Any],
               *, block: bool = False) -> Job:
        """Queue a job; raises QueueFull when the model's queue cannot take it (unless `block`)."""
        job = Job(loaded, kind, key, seqs, metas, results=[None] * len(seqs),
                  queue_seconds=[0.0] * len(seqs), compute_seconds=[0.0] * len(seqs), remaining=len(seqs))
        if not seqs:
            job.future.set_result(job)
            return job
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i].ids))
        tokens = sum(len(s.ids) for s in seqs)
        with self._cv:
            q = self._queues.setdefault(job.model, deque())
            while (reason := self._refusal(job.model, q, len(seqs), tokens)) is not None:
                if not block:
                    self.metrics.queue_rejections.labels(job.model).inc()
                    raise QueueFull(f"queue: model '{job.model}' {reason}; retry after the hinted delay",
                                    field="items", retry_after=self._retry_after(job.model))
                self._cv.wait(0.05)
            job.enqueued = time.monotonic()
            q.extend(_Piece(job, i, len(seqs[i].ids)) for i in order)
            self._queued_tokens[job.model] = self._queued_tokens.get(job.model, 0) + tokens
            self.metrics.queue_depth.labels(job.model).set(len(q))
            self._cv.notify_all()
        return job

    def _refusal(self, model: str, q: deque[_Piece], n: int, tokens: int) -> str | None:
        """Why this job cannot be queued now (None: it can). An empty queue always admits."""
        if not q:
            return None
        if len(q) + n > self.queue_capacity:
            return f"has {len(q)} sequences waiting (capacity {self.queue_capacity})"
        rate = self._tokens_per_s.get(model)
        if self.max_queue_wait and rate:
            wait = (self._queued_tokens.get(model, 0) + tokens) / rate
            if wait > self.max_queue_wait:
                return (f"would make this request wait ~{wait:.1f}s in the queue "
                        f"(limit {self.max_queue_wait:g}s, SIE_MAX_QUEUE_WAIT)")
        return None

    def _pop(self, model: str, q: deque[_Piece]) -> _Piece:
        piece = q.popleft()
        self._queued_tokens[model] -= piece.tokens
        return piece

    async def run(self, loaded: LoadedModel, kind: str, key: Hashable, seqs: list[Tokenized],
                  metas: list[Any], *, block: bool = False) -> Job:
        """Submit and wait; if the caller is cancelled (client disconnected) the job is dropped."""
        job = self.submit(loaded, kind, key, seqs, metas, block=block)
        try:
            return await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            self.cancel(job)
            raise

    def cancel(self, job: Job) -> None:
        job.cancelled = True
        if not job.future.done():
            job.future.cancel()

    def depth(self, model: str) -> int:
        with self._cv:
            return len(self._queues.get(model, ()))

    def depths(self) -> dict[str, int]:
        with self._cv:
            return {m: len(q) for m, q in self._queues.items()}

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        try:
            self._ready.put_nowait(None)
        except queue.Full:
            pass
        self._former.join(timeout=5)
        self._ready.put(None)
        self._worker.join(timeout=30)

    def _retry_after(self, model: str) -> float:
        """Seconds until the queue has drained, from the model's measured throughput."""
        rate = self._tokens_per_s.get(model)
        return max(1.0, round(self._queued_tokens.get(model, 0) / rate, 1)) if rate else 1.0

    # -- forming batches --------------------------------------------------------------------------
    def _form_forever(self) -> None:
        while True:
            with self._cv:
                batch = None
                while not self._closed and batch is None:
                    batch = self._cut_batch()
                    if batch is None:
                        self._cv.wait()
                if self._closed:
                    return
            self._ready.put(batch)  # blocks while the previous batch is still waiting for the device

    def _cut_batch(self) -> _Batch | None:
        """Under the lock: the next batch from the model whose head sequence is oldest."""
        heads = []
        for model, q in self._queues.items():
            while q and q[0].job.cancelled:
                self._pop(model, q)
            if q:
                heads.append((q[0].job.enqueued, model))
        if not heads:
            return None
        _, model = min(heads)
        q = self._queues[model]
        key = q[0].job.key
        batch = _Batch(model, key, [], 0)
        self._fill(batch, q, q[0].job.loaded.token_budget)
        return batch

    def _fill(self, batch: _Batch, q: deque[_Piece], budget: int) -> None:
        """Move compatible pieces from the front of `q` into `batch` while they fit the token budget."""
        while q:
            piece = q[0]
            if piece.job.cancelled:
                self._pop(batch.model, q)
                continue
            if piece.job.key != batch.key:
                break
            if not self.cross_request and batch.pieces and piece.job is not batch.pieces[0].job:
                break
            if batch.pieces and batch.tokens + piece.tokens > budget:
                break
            batch.pieces.append(self._pop(batch.model, q))
            batch.tokens += piece.tokens
        self.metrics.queue_depth.labels(batch.model).set(len(q))
        self._cv.notify_all()

    def _top_up(self, batch: _Batch) -> None:
        with self._cv:
            q = self._queues.get(batch.model)
            if q and batch.pieces:
                self._fill(batch, q, batch.pieces[0].job.loaded.token_budget)

    # -- computing --------------------------------------------------------------------------------
    def _compute_forever(self) -> None:
        while True:
            batch = self._ready.get()
            if batch is None:
                return
            self._top_up(batch)
            batch.pieces = [p for p in batch.pieces if not p.job.cancelled]
            if batch.pieces:
                self._run(batch)

    def _run(self, batch: _Batch) -> None:
        loaded = batch.pieces[0].job.loaded
        start = time.monotonic()
        try:
            results = self._compute_with_recovery(batch.model, loaded, batch.pieces, may_evict=True)
        except SieError as e:
            self._fail(batch.pieces, e)
            return
        except Exception as e:  # a bug in one batch must not stop the compute thread
            log.exception("batch for %s failed", batch.model)
            self._fail(batch.pieces, SieError(f"internal error while computing a batch for '{batch.model}': "
                                              f"{type(e).__name__}: {e}"))
            return
        elapsed = time.monotonic() - start
        tokens = sum(p.tokens for p in batch.pieces)
        rate = tokens / max(elapsed, 1e-6)
        old = self._tokens_per_s.get(batch.model)
        self._tokens_per_s[batch.model] = rate if old is None else 0.8 * old + 0.2 * rate
        self.metrics.batch_tokens.labels(batch.model).observe(tokens)
        self.metrics.batch_items.labels(batch.model).observe(len(batch.pieces))
        self.metrics.phase_seconds.labels(batch.model, "compute").observe(elapsed)
        for piece, result in zip(batch.pieces, results):
            job = piece.job
            if job.future.done():
                continue
            job.results[piece.index] = result
            job.queue_seconds[piece.index] = start - job.enqueued
            job.compute_seconds[piece.index] = elapsed
            job.remaining -= 1
            if job.remaining == 0:
                self.metrics.phase_seconds.labels(batch.model, "queue").observe(start - job.enqueued)
                job.future.set_result(job)

    def _compute_with_recovery(self, model: str, loaded: LoadedModel, pieces: list[_Piece],
                               may_evict: bool) -> list[Any]:
        seqs = [p.job.seqs[p.index] for p in pieces]
        metas = [p.job.metas[p.index] for p in pieces]
        try:
            return self._compute[pieces[0].job.kind](loaded, seqs, metas)
        except Exception as e:
            if not is_out_of_memory(e):
                raise
        _release_cached_memory(loaded)
        if may_evict and self._evict_idle(model):
            self.metrics.oom_recoveries.labels(model, "evict").inc()
            return self._compute_with_recovery(model, loaded, pieces, may_evict=True)
        if len(pieces) > 1:
            self.metrics.oom_recoveries.labels(model, "split").inc()
            half = len(pieces) // 2
            return (self._compute_with_recovery(model, loaded, pieces[:half], may_evict=False)
                    + self._compute_with_recovery(model, loaded, pieces[half:], may_evict=False))
        self.metrics.oom_recoveries.labels(model, "fail").inc()
        raise ResourceExhausted(f"memory: out of device memory computing one sequence of {pieces[0].tokens} "
                                f"tokens for '{model}' even after evicting idle models", retry_after=5.0)

    def _fail(self, pieces: list[_Piece], error: SieError) -> None:
        for job in {id(p.job): p.job for p in pieces}.values():
            job.cancelled = True  # its other sequences are dropped from the queue
            if not job.future.done():
                job.future.set_exception(error)


def _release_cached_memory(loaded: LoadedModel) -> None:
    if loaded.device.type == "cuda":
        torch.cuda.empty_cache()
