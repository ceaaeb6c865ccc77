"""Cross-request batching: per-model bounded queues in two lanes, token-budget batches, one compute
thread per device.

Every job is in a lane: `interactive` (queries, rerank at query time, the HTTP default) or `batch` (ingest
runs, bulk callers). A request's sequences enter its model's queue of that lane, longest first. Whenever
the device is free (continuous batching: no timer adds latency to a lone request) the compute thread
cuts the next batch: from the interactive lane while it holds work, from the model whose head sequence
is most urgent; compatible sequences (same kind of work) up to the model's token budget (a batch led by work
with a deadline takes only such work). Within a lane's
queue, work with a deadline goes first (earliest deadline first), then the rest in arrival order.
While both lanes have work, bulk keeps at least 1/BULK_EVERY of the compute time (it is owed the next
batch, and is not preempted, while its share is below that), so it cannot starve. A batch never mixes lanes.

Latency-bound work that arrives while a less urgent batch is on the device (`_class`: work with a deadline
beats work without; interactive beats bulk) waits at most one sub-layer of it: forward passes call
`sie.models.runner.between_layers`, where the compute thread computes queued work more urgent than the
batch it paused (preemption; the preempting batches are not preempted). Optional time slices keep layers
shorter (`slice_seconds`, SIE_BATCH_SLICE, off by default: on CPU small batches cost bulk much of its
throughput): while such work is about (seen in the last SLICE_WINDOW seconds), a less urgent batch is cut
to what its model computes in `slice_seconds` (from its lane's measured throughput; at least one sequence).

Admission never blocks a thread: `run` is a coroutine, and a caller whose lane is full either gets
QueueFull (`wait=False`: 429 with a Retry-After from the model's measured throughput) or awaits an
asyncio future that the compute thread resolves through the caller's loop (`call_soon_threadsafe`)
when sequences leave that model's queue. A job may carry a deadline (monotonic seconds): when it passes,
the caller gets DeadlineExceeded and the job's queued sequences are dropped; an expired sequence never
reaches compute, and a batch whose every job was cancelled or expired stops at its next layer. Sequences
of cancelled requests (client gone) are dropped too. Out of memory during a batch: evict an idle model and
retry, then split the batch, then fail that batch only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import torch

from sie.call_options import LANES, Lane, check_lane
from sie.errors import DeadlineExceeded, QueueFull, ResourceExhausted, SieError, without_frames
from sie.metrics import Metrics
from sie.models.runner import install_between_layers
from sie.runtime.compute import COMPUTE
from sie.runtime.loaded_model import LoadedModel
from sie.runtime.tokenizer import Tokenized

log = logging.getLogger(__name__)

# While both lanes have work, bulk gets at least one second of compute in BULK_EVERY: 4 keeps ≥ 3/4 of the
# device for interactive work and guarantees an ingest run under sustained query traffic a quarter of its
# speed or more. Shares are of time, not of batches: interactive batches are often a single short query,
# and one bulk batch per three of those would hand bulk nearly the whole device (bench/serve.py's
# saturation phase reports what both lanes saw).
BULK_EVERY = 4

# How long after the last latency-bound arrival batches of less urgent work stay sliced: queries come in
# bursts with gaps, and the first query after a gap should not wait a full batch either.
SLICE_WINDOW = 5.0


@dataclass(eq=False)
class Job:
    """One request's work for one model; resolves when every sequence has a result."""

    loaded: LoadedModel
    kind: str
    key: Hashable
    seqs: list[Tokenized]
    metas: list[Any]
    lane: Lane = "interactive"
    deadline: float | None = None           # time.monotonic() after which the job is dropped
    # Resolves to None when done: a future whose result were the job itself would make a reference cycle
    # (job -> future -> job) that only the rare full garbage collection frees, keeping every finished
    # job's model, inputs and vectors alive; under model swaps that held GiBs (bench/soak.py).
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

    @property
    def tokens(self) -> int:
        return sum(len(s.ids) for s in self.seqs)

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


@dataclass(eq=False)
class _Piece:
    job: Job
    index: int
    tokens: int


@dataclass(eq=False)
class _Batch:
    model: str
    lane: Lane
    key: Hashable
    pieces: list[_Piece]
    tokens: int
    contended: bool = False   # cut while both lanes had work: its time counts towards the lanes' shares


def is_out_of_memory(e: BaseException) -> bool:
    if isinstance(e, torch.OutOfMemoryError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text)


class TokenBudgetBatcher:
    def __init__(self, metrics: Metrics, *, queue_capacity: int = 4096, max_queue_wait: float | None = None,
                 cross_request: bool = True, slice_seconds: float | None = None,
                 evict_idle: Callable[[str], bool] = lambda model: False,
                 compute: dict[str, Callable] = COMPUTE) -> None:
        self.metrics = metrics
        self.queue_capacity = queue_capacity      # per model and lane
        self.max_queue_wait = max_queue_wait
        self.cross_request = cross_request
        self.slice_seconds = slice_seconds
        self._evict_idle = evict_idle
        self._compute = compute
        self._queues: dict[tuple[str, Lane], deque[_Piece]] = {}
        self._queued_tokens: dict[tuple[str, Lane], int] = {}
        # Per model and lane: decayed sums of (tokens, seconds) of its batches. Their ratio is the lane's
        # throughput, weighted by compute time: a stream of one-sequence interactive batches (mostly fixed
        # cost) must not make bulk look slow, which would shrink its slices and refuse its work.
        self._measured: dict[tuple[str, Lane], tuple[float, float]] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}
        self._busy = {lane: 0.0 for lane in LANES}   # compute seconds per lane since both lanes last had work
        self._last_seen = [-SLICE_WINDOW, -SLICE_WINDOW]   # monotonic arrival of the last job per _class 0, 1
        self._queued_by_class = [0, 0, 0]   # queued sequences per _class, read without the lock between layers
        self._computing: int | None = None  # _class of the preemptible batch on the device (None: none, or nested)
        self._preempted_seconds = 0.0       # of that batch's time, spent computing the batches that preempted it
        self._paused_start = 0.0            # when that batch started
        self._on_device: list[Job] = []     # its jobs, each once
        self._cv = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._compute_forever, name="sie-compute", daemon=True)
        self._worker.start()

    # -- submitting -------------------------------------------------------------------------------
    def submit(self, loaded: LoadedModel, kind: str, key: Hashable, seqs: list[Tokenized], metas: list[Any],
               *, lane: Lane = "interactive", deadline: float | None = None) -> Job:
        """Queue a job now; raises QueueFull when its lane of the model's queue cannot take it."""
        job = self._job(loaded, kind, key, seqs, metas, lane, deadline)
        if seqs:
            with self._cv:
                if (reason := self._enqueue(job)) is not None:
                    raise self._refuse(job, reason)
        return job

    def refuse_early(self, loaded: LoadedModel, lane: Lane, deadline: float | None) -> None:
        """Before a request is tokenized: QueueFull when its lane is so full that any job would be refused.
        A client that ignores Retry-After would otherwise have the server tokenize every request it sends
        only to refuse it, starving the event loop and the tokenizer threads of the work that is served."""
        probe = Job(loaded, "probe", None, [], [], check_lane(lane), deadline)
        with self._cv:
            q = self._queues.get((probe.model, probe.lane))
            if q and (reason := self._refusal(probe, q, self._ahead(probe, q), 1, 0)) is not None:
                raise self._refuse(probe, reason)

    async def run(self, loaded: LoadedModel, kind: str, key: Hashable, seqs: list[Tokenized],
                  metas: list[Any], *, wait: bool = False, lane: Lane = "interactive",
                  deadline: float | None = None) -> Job:
        """Queue and await the job. A full lane: QueueFull, or with `wait` await room without blocking the
        loop. Past `deadline`: DeadlineExceeded. If the caller is cancelled (client gone) the job is dropped."""
        job = self._job(loaded, kind, key, seqs, metas, lane, deadline)
        if not seqs:
            return job
        await self._admit(job, wait)
        try:
            await asyncio.wait_for(asyncio.wrap_future(job.future), self._left(job))
            return job
        except TimeoutError:
            self.cancel(job)
            raise self._expired(job, "before its sequences were computed") from None
        except asyncio.CancelledError:
            self.cancel(job)
            raise

    def _job(self, loaded: LoadedModel, kind: str, key: Hashable, seqs: list[Tokenized], metas: list[Any],
             lane: Lane, deadline: float | None) -> Job:
        job = Job(loaded, kind, key, seqs, metas, check_lane(lane), deadline, results=[None] * len(seqs),
                  queue_seconds=[0.0] * len(seqs), compute_seconds=[0.0] * len(seqs), remaining=len(seqs))
        if not seqs:
            job.future.set_result(None)
        return job

    async def _admit(self, job: Job, wait: bool) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._cv:
                reason = self._enqueue(job)
                if reason is None:
                    return
                if not wait:
                    raise self._refuse(job, reason)
                room = loop.create_future()
                self._waiters.setdefault(job.model, []).append((loop, room))
            try:
                await asyncio.wait_for(room, self._left(job))
            except TimeoutError:
                raise self._expired(job, "while waiting for room in the queue") from None
            finally:
                with self._cv:
                    waiting = self._waiters.get(job.model, [])
                    if (loop, room) in waiting:
                        waiting.remove((loop, room))

    def _left(self, job: Job) -> float | None:
        return None if job.deadline is None else max(0.0, job.deadline - time.monotonic())

    def _expired(self, job: Job, when: str) -> DeadlineExceeded:
        return DeadlineExceeded(f"deadline: the {job.kind} request for '{job.model}' ({len(job.seqs)} sequences, "
                                f"{job.lane} lane) ran out of time {when}; its queued work was dropped",
                                field="timeout_ms")

    def _refuse(self, job: Job, reason: str) -> QueueFull:
        self.metrics.queue_rejections.labels(job.model, job.lane).inc()
        return QueueFull(f"queue: model '{job.model}' ({job.lane} lane) {reason}; retry after the hinted delay",
                         field="items", retry_after=self._retry_after(job.model, job.lane))

    def _enqueue(self, job: Job) -> str | None:
        """Under the lock: queue the job, or say why it cannot be queued now."""
        lane_key = (job.model, job.lane)
        q = self._queues.setdefault(lane_key, deque())
        tokens = job.tokens
        at = self._ahead(job, q)
        if (reason := self._refusal(job, q, at, len(job.seqs), tokens)) is not None:
            return reason
        job.enqueued = time.monotonic()
        c = _class(job)
        if c < len(self._last_seen):
            self._last_seen[c] = job.enqueued
        self._queued_by_class[c] += len(job.seqs)
        pieces = [_Piece(job, i, len(job.seqs[i].ids))
                  for i in sorted(range(len(job.seqs)), key=lambda i: -len(job.seqs[i].ids))]
        if at == len(q):
            q.extend(pieces)
        else:  # earliest deadline first: ahead of work due later and of work with no deadline
            q.rotate(-at)
            q.extendleft(reversed(pieces))
            q.rotate(at)
        self._queued_tokens[lane_key] = self._queued_tokens.get(lane_key, 0) + tokens
        self.metrics.queue_depth.labels(job.model, job.lane).set(len(q))
        self._cv.notify_all()
        return None

    def _ahead(self, job: Job, q: deque[_Piece]) -> int:
        """How many queued sequences `job` would wait behind in its lane. The queue is kept in `_urgency`
        order, so they are its first ones: all of them for work without a deadline."""
        if job.deadline is None or not q or _urgency(q[-1].job) <= _urgency(job):
            return len(q)
        urgency = _urgency(job)
        return next(i for i, piece in enumerate(q) if _urgency(piece.job) > urgency)

    def _refusal(self, job: Job, q: deque[_Piece], ahead: int, seqs: int, tokens: int) -> str | None:
        """Why `seqs` sequences of `tokens` cannot be queued now behind the lane's first `ahead` (None: they
        can). An empty lane always admits. The bounds count the work the job would wait behind: a job with a
        deadline goes ahead of the deadline-free work, so a flood of that work (which keeps the lane full)
        does not keep it out."""
        if not q:
            return None
        if ahead + seqs > self.queue_capacity:
            return f"has {ahead} sequences waiting (capacity {self.queue_capacity})"
        rate = self._tokens_per_s(job.model, job.lane)
        if self.max_queue_wait and rate:
            queued = self._tokens_ahead(job.model, job.lane)
            if ahead < len(q):  # it goes ahead of the rest of its lane
                queued += sum(p.tokens for p in itertools.islice(q, ahead)) - self._queued_tokens[(job.model, job.lane)]
            wait = (queued + tokens) / rate
            if wait > self.max_queue_wait:
                return (f"would make this request wait ~{wait:.1f}s in the queue "
                        f"(limit {self.max_queue_wait:g}s, SIE_MAX_QUEUE_WAIT)")
        return None

    def _tokens_per_s(self, model: str, lane: Lane) -> float | None:
        """The lane's measured throughput for the model (the other lane's until it has its own); None: unknown."""
        tokens, seconds = self._measured.get((model, lane)) or next(
            (m for (name, _), m in self._measured.items() if name == model), (0.0, 0.0))
        return tokens / seconds if seconds > 0 else None

    def _tokens_ahead(self, model: str, lane: Lane) -> int:
        """Queued tokens a new job of `lane` waits behind: its own lane, and for bulk the interactive one too."""
        lanes = LANES[: LANES.index(lane) + 1]
        return sum(self._queued_tokens.get((model, ln), 0) for ln in lanes)

    def _pop(self, model: str, lane: Lane, q: deque[_Piece]) -> _Piece:
        piece = q.popleft()
        self._queued_tokens[(model, lane)] -= piece.tokens
        self._queued_by_class[_class(piece.job)] -= 1
        return piece

    def cancel(self, job: Job) -> None:
        """Drop the job: its queued sequences leave the queue now (and make room for waiting callers)."""
        job.cancelled = True
        if not job.future.done():
            job.future.cancel()
        with self._cv:
            q = self._queues.get((job.model, job.lane))
            if q and any(p.job is job for p in q):
                kept = [p for p in q if p.job is not job]
                self._queued_tokens[(job.model, job.lane)] = sum(p.tokens for p in kept)
                self._queued_by_class[_class(job)] -= len(q) - len(kept)
                q.clear()
                q.extend(kept)
                self._left_queue(job.model, job.lane, q)

    def _left_queue(self, model: str, lane: Lane, q: deque[_Piece]) -> None:
        """Under the lock, after sequences left a queue: publish its depth, wake callers waiting for room."""
        self.metrics.queue_depth.labels(model, lane).set(len(q))
        for loop, room in self._waiters.pop(model, []):
            try:
                loop.call_soon_threadsafe(_resolve, room)
            except RuntimeError:  # that caller's loop is closed: nobody is waiting any more
                pass

    def depth(self, model: str) -> int:
        with self._cv:
            return sum(len(self._queues.get((model, lane), ())) for lane in LANES)

    def depths(self) -> dict[str, int]:
        with self._cv:
            out: dict[str, int] = {}
            for (model, _), q in self._queues.items():
                out[model] = out.get(model, 0) + len(q)
            return out

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._worker.join(timeout=30)

    def _retry_after(self, model: str, lane: Lane) -> float:
        """Seconds until the queue ahead of this lane has drained, from the model's measured throughput."""
        rate = self._tokens_per_s(model, lane)
        return max(1.0, round(self._tokens_ahead(model, lane) / rate, 1)) if rate else 1.0

    # -- cutting batches --------------------------------------------------------------------------
    def _cut_batch(self) -> _Batch | None:
        """Under the lock: the next batch — interactive first unless bulk is owed its share; within a lane,
        from the model whose head sequence is most urgent."""
        now = time.monotonic()
        heads: dict[Lane, list[tuple[float, str]]] = {lane: [] for lane in LANES}
        for (model, lane), q in self._queues.items():
            self._drop_dead(model, lane, q, now)
            if q:
                heads[lane].append((_urgency(q[0].job), model))
        interactive, bulk = heads["interactive"], heads["batch"]
        if not (interactive and bulk):
            self._busy = dict.fromkeys(LANES, 0.0)
        if interactive and not (bulk and self._bulk_owed()):
            lane: Lane = "interactive"
        elif bulk:
            lane = "batch"
        else:
            return None
        _, model = min(heads[lane])
        batch = self._fill(model, lane, now)
        batch.contended = bool(interactive and bulk)
        return batch

    def _cut_urgent(self, than: int) -> _Batch | None:
        """Under the lock: the next batch of work more urgent than `than` (a `_class`), the most urgent first."""
        now = time.monotonic()
        best = None
        for (model, lane), q in self._queues.items():
            self._drop_dead(model, lane, q, now)
            if q and (c := _class(q[0].job)) < than and (best is None or (c, _urgency(q[0].job)) < best[0]):
                best = ((c, _urgency(q[0].job)), model, lane)
        if best is None:
            return None
        batch = self._fill(best[1], best[2], now, below=than)
        batch.contended = True  # it preempts the batch on the device, whose work waits meanwhile
        return batch

    def _fill(self, model: str, lane: Lane, now: float, below: int | None = None) -> _Batch:
        """Under the lock: a batch from the head of a queue: same-key sequences of `_class` < `below`, up to
        the budget. A batch led by work with a deadline takes only work with a deadline: filled up with the
        lane's other work it would compute a full token budget (a 2048-token MiniLM batch: ~0.8 s on two
        cores) for a query that needs one short sequence, and nothing could preempt it."""
        q = self._queues[(model, lane)]
        if _class(q[0].job) == 0:
            below = 1
        batch = _Batch(model, lane, q[0].job.key, [], 0)
        budget = self._budget(q[0].job, now)
        while q:
            self._drop_dead(model, lane, q, now)
            if not q:
                break
            piece = q[0]
            if piece.job.key != batch.key or (below is not None and _class(piece.job) >= below):
                break
            if not self.cross_request and batch.pieces and piece.job is not batch.pieces[0].job:
                break
            if batch.pieces and batch.tokens + piece.tokens > budget:
                break
            batch.pieces.append(self._pop(model, lane, q))
            batch.tokens += piece.tokens
        self._left_queue(model, lane, q)
        return batch

    def _bulk_owed(self, progress: float = 0.0) -> bool:
        """Under the lock: True when bulk has had less than 1/BULK_EVERY of the compute time since both lanes
        had work (`progress`: seconds of a bulk batch on the device not yet counted)."""
        return (self._busy["batch"] + progress) * (BULK_EVERY - 1) < self._busy["interactive"]

    def _budget(self, head: Job, now: float) -> int:
        """Tokens for a batch led by `head`: its model's token budget, or a time slice of it while more
        urgent work than the head's is about (see the module docstring)."""
        budget = head.loaded.token_budget
        rate = self._tokens_per_s(head.model, head.lane)
        if self.slice_seconds and rate and any(now - t < SLICE_WINDOW for t in self._last_seen[:_class(head)]):
            return max(1, min(budget, int(rate * self.slice_seconds)))
        return budget

    def _drop_dead(self, model: str, lane: Lane, q: deque[_Piece], now: float) -> None:
        """Pop the leading sequences of cancelled or expired jobs (an expired job fails with DeadlineExceeded)."""
        dropped = False
        while q and (q[0].job.cancelled or q[0].job.expired(now)):
            job = self._pop(model, lane, q).job
            if not job.cancelled:
                _fail_job(job, self._expired(job, "while queued"))
            dropped = True
        if dropped:
            self._left_queue(model, lane, q)

    # -- computing --------------------------------------------------------------------------------
    def _compute_forever(self) -> None:
        install_between_layers(self._between_layers)
        while True:
            with self._cv:
                batch = None
                while not self._closed and (batch := self._cut_batch()) is None:
                    self._cv.wait()
                if self._closed:
                    return
            if batch.pieces:
                self._run(batch)

    def _between_layers(self) -> None:
        """Between two layers of the batch on the device: stop it when nobody waits for it any more (every
        job cancelled or past its deadline), else compute the queued work more urgent than it first."""
        if self._computing is None:
            return
        now = time.monotonic()
        if all(job.cancelled or job.expired(now) for job in self._on_device):
            raise _Abandoned
        if any(self._queued_by_class[:self._computing]):
            self._preempt(self._computing)

    def _preempt(self, paused: int) -> None:
        self._computing = None  # what runs now is not preempted in turn
        start = time.monotonic()
        progress = start - self._paused_start - self._preempted_seconds   # the paused batch's own compute so far
        try:
            while True:
                with self._cv:
                    if paused == BULK_CLASS and self._bulk_owed(progress):
                        break  # bulk keeps its share of the time, counting the batch it has on the device
                    batch = self._cut_urgent(paused)
                    if batch is None:
                        break
                if batch.pieces:
                    self._run(batch, nested=True)
        finally:
            self._computing = paused
            self._preempted_seconds += time.monotonic() - start

    def _run(self, batch: _Batch, nested: bool = False) -> None:
        loaded = batch.pieces[0].job.loaded
        batch.pieces = _longest_first(batch.pieces)
        start = time.monotonic()
        if not nested:
            self._computing, self._preempted_seconds = min(_class(p.job) for p in batch.pieces), 0.0
            self._paused_start, self._on_device = start, _jobs(batch.pieces)
        try:
            results = self._compute_with_recovery(batch.model, loaded, batch.pieces, may_evict=True)
        except SieError as e:
            self._fail(batch.pieces, e)
            return
        except _Abandoned:
            for job in _jobs(batch.pieces):
                _fail_job(job, self._expired(job, "while its batch was computing"))
            return
        except Exception as e:  # a bug in one batch must not stop the compute thread
            log.exception("batch for %s failed", batch.model)
            self._fail(batch.pieces, SieError(f"internal error while computing a batch for '{batch.model}': "
                                              f"{type(e).__name__}: {e}"))
            return
        finally:
            if not nested:
                self._computing, self._on_device = None, []
        preempted = 0.0 if nested else self._preempted_seconds
        if preempted:
            self.metrics.preemptions.labels(batch.model).inc()
        elapsed = time.monotonic() - start - preempted  # its own compute, not the work that preempted it
        tokens = sum(p.tokens for p in batch.pieces)
        with self._cv:  # readers iterate it under the lock
            if batch.contended:
                self._busy[batch.lane] += elapsed
            old_tokens, old_seconds = self._measured.get((batch.model, batch.lane), (0.0, 0.0))
            self._measured[(batch.model, batch.lane)] = (0.8 * old_tokens + tokens, 0.8 * old_seconds + elapsed)
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
                try:
                    job.future.set_result(None)
                except concurrent.futures.InvalidStateError:  # cancelled by its caller meanwhile
                    pass

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
        for job in _jobs(pieces):
            _fail_job(job, error)


def _jobs(pieces: list[_Piece]) -> list[Job]:
    """The jobs of these pieces, each once, in order."""
    return list({id(p.job): p.job for p in pieces}.values())


class _Abandoned(Exception):
    """Raised between layers to stop computing a batch that nobody waits for any more."""


def _class(job: Job) -> int:
    """How latency-bound a job is: 0 with a deadline, 1 interactive, 2 (BULK_CLASS) bulk."""
    return 0 if job.deadline is not None else LANES.index(job.lane) + 1


BULK_CLASS = 2


def _urgency(job: Job) -> tuple[int, float]:
    """Queue order within a lane: work with a deadline first, earliest deadline first; then the rest, oldest
    first. A query pipeline's engine calls carry what is left of the query's budget, so under a flood of
    deadline-free calls in the same lane they are served while they can still be used."""
    return (0, job.deadline) if job.deadline is not None else (1, job.enqueued)


def _longest_first(pieces: list[_Piece]) -> list[_Piece]:
    """A batch's pieces longest first, as packing needs them. Each job's pieces were queued longest first, so
    a batch is a few such runs (one per job it took from): they are merged, not sorted again; pieces of equal
    length keep their queue order."""
    runs: list[list[_Piece]] = []
    for piece in pieces:
        if runs and piece.tokens <= runs[-1][-1].tokens:
            runs[-1].append(piece)
        else:
            runs.append([piece])
    return runs[0] if len(runs) == 1 else list(heapq.merge(*runs, key=lambda p: -p.tokens))


def _fail_job(job: Job, error: SieError) -> None:
    job.cancelled = True  # its other sequences are dropped from the queue
    try:
        if not job.future.done():
            job.future.set_exception(without_frames(error))
    except concurrent.futures.InvalidStateError:  # cancelled by its caller meanwhile
        pass


def _resolve(room: asyncio.Future) -> None:
    if not room.done():
        room.set_result(None)


def _release_cached_memory(loaded: LoadedModel) -> None:
    if loaded.device.type == "cuda":
        torch.cuda.empty_cache()
