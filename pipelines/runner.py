"""The ingest runner: read -> steps -> write, as three threads joined by bounded queues, so the engine
encodes one batch while the previous one is written and the next one is read.

    report = IngestRunner(pipeline, engine, store).run(RunOptions(shard=Shard(0, 4)))

Incremental: a source whose content hash and steps fingerprint a sink already committed is skipped for
that sink; a changed one gets its new chunks written, then its stale chunks deleted (pipelines.writer);
with `sync_deletions`, sources that disappeared are deleted once every file was read. From a bucket, an
object whose listed version every sink already holds is skipped before it is downloaded (pipelines.objects).
Failures: model steps are retried per batch with backoff, then per source (one bad document cannot sink its batch);
an engine still unreachable or busy (429/503) after the retries stops the run as failed (a rerun resumes it). Sink
writes are retried per batch and sink; what still fails goes to the dead-letter file, and `retry_dlq`
replays it. Each sink is opened by pipelines.targets: a sink that no longer holds what the
run store committed is backfilled, `full` reprocesses everything, and a changed sink schema is written
into a new collection that replaces the old one only once every source is in it (blue/green).
"""

from __future__ import annotations

import collections
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connectors import Schema
from connectors.errors import ConnectorError
from pipelines.dlq import DeadLetters
from pipelines.errors import PipelineError
from pipelines.models import directory_for
from pipelines.objects import ObjectMark, ObjectSource, unchanged
from pipelines.sources import Document, FileSource, Reader, Refusal, Shard
from pipelines.spec import FilesSource, ObjectStoreSource, Pipeline
from pipelines.steps import step_class
from pipelines.steps.base import BULK, Chunk, IngestStep, StepContext
from pipelines.store import RunRecord, RunStore
from pipelines.targets import RECORDS_SWITCH, blockers, drop_retired, open_target, settle
from pipelines.tokenizers import Tokenizers
from pipelines.vectors import sink_schema
from pipelines.writer import Target, Work, Writer
from sie.errors import SieError
from sie.server.errors import http_status

_DONE = object()
Listener = Callable[[str, dict[str, Any]], None]
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_ERRORS = 100


@dataclass
class RunOptions:
    shard: Shard = field(default_factory=Shard)
    sync_deletions: bool | None = None      # None: the source's `sync_deletions`
    retry_dlq: bool = False
    documents: list[Document] | None = None  # posted records (a `records` source)
    full: bool = False                       # reprocess every source for every sink, delete vanished ones

    @property
    def every_record(self) -> bool:
        """Posted records with `full`: they are all of them (sie cannot re-read posted records to know)."""
        return self.documents is not None and self.full and not self.retry_dlq


@dataclass
class RunReport:
    run_id: str
    state: str
    counters: dict[str, Any]
    errors: list[str]
    dead_letters: int
    seconds: float


class Counters:
    """Per stage and per sink, thread-safe; the summary table and GET /v1/runs/{id} show them. `refused`
    counts what the source rules would not read; `refusals` lists the first MAX_REFUSALS with their reasons."""

    STAGE = ("listed", "read", "skipped", "chunked", "processed", "failed", "refused")
    SINK = ("skipped", "written", "failed", "deleted", "committed")
    MAX_REFUSALS = 100

    def __init__(self, sinks: list[str]) -> None:
        self._lock = threading.Lock()
        self.stages = dict.fromkeys(self.STAGE, 0)
        self.sinks = {s: dict.fromkeys(self.SINK, 0) for s in sinks}
        self.notes: list[str] = []   # what the run did besides the counts (backfill, reindex, switch)
        self.refusals: list[dict[str, str]] = []

    def add(self, name: str, n: int = 1, sink: str | None = None) -> None:
        with self._lock:
            bucket = self.stages if sink is None else self.sinks[sink]
            bucket[name] = bucket.get(name, 0) + n

    def note(self, message: str) -> None:
        with self._lock:
            self.notes.append(message)

    def refuse(self, refusal: Refusal) -> None:
        with self._lock:
            self.stages["refused"] += 1
            if len(self.refusals) < self.MAX_REFUSALS:
                self.refusals.append({"path": refusal.path, "reason": refusal.reason})

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"stages": dict(self.stages), "sinks": {k: dict(v) for k, v in self.sinks.items()},
                    "notes": list(self.notes), "refusals": list(self.refusals)}


class IngestRunner:
    def __init__(self, pipeline: Pipeline, engine: Any, store: RunStore, *, tokenizers: Tokenizers | None = None,
                 listener: Listener | None = None, stop: threading.Event | None = None) -> None:
        if pipeline.kind != "ingest":
            raise PipelineError(f"pipeline {pipeline.name!r} is a query pipeline; use `sie query`", field="kind")
        self.p, self.engine, self.store = pipeline, engine, store
        self.tokenizers = tokenizers or Tokenizers(engine, **BULK)  # chunks count in the bulk lane, as steps run
        self.listener = listener
        self.stop = stop or threading.Event()
        self.errors: list[str] = []
        self._flushed = 0.0

    # -- events ------------------------------------------------------------------------------------
    def emit(self, event: str, **data: Any) -> None:
        if event == "upserted":
            self.counters.add("written", data["written"], data["sink"])
            self.counters.add("failed", data["failed"], data["sink"])
        elif event == "deleted":
            self.counters.add("deleted", data["deleted"], data["sink"])
        elif event == "committed":
            self.counters.add("committed", data["sources"], data["sink"])
        if "message" in data:
            self.counters.note(data["message"])
        if self.listener is not None:
            self.listener(event, data)
        if event in ("committed", "run_finished") or time.monotonic() - self._flushed > 1.0:
            self._flushed = time.monotonic()
            self.store.update_run(self.run_id, counters=self.counters.snapshot(), errors=self.errors)

    # -- the run -----------------------------------------------------------------------------------
    def run(self, options: RunOptions | None = None, run: RunRecord | None = None) -> RunReport:
        options = options or RunOptions()
        shard = options.shard
        if run is None:
            run, _ = self.store.create_run(self.p.name, shard=f"{shard.index}/{shard.count}", state="running",
                                           request={"retry_dlq": options.retry_dlq})
        self.run_id = run.id
        self.counters = Counters([s.key for s in self.p.sinks])
        started = time.monotonic()
        self.store.update_run(run.id, state="running")
        dlq = DeadLetters(self.dlq_path(shard))
        targets: list[Target] = []
        state, dead = "failed", 0
        try:
            targets = self._open_targets(options)
            writer = Writer(self.p.name, self.p.version, self.p.fingerprint(), self._model(), self.store,
                            self.p.retry, self.emit, self.stop, shard=_shard_text(shard))
            self.emit("run_started", run_id=run.id, sinks=[t.key for t in targets])
            seen: set[str] = set()
            source, documents, resolved = self._documents(options, dlq, targets, seen)
            dead = self._pipeline(documents, targets, writer, seen, dlq)
            if self.stop.is_set():
                state = "interrupted"
            else:
                self._sync_deletions(options, source, targets, writer, seen)
                self._prune_dlq(dlq, writer.committed, resolved)
                failed = any(c["failed"] for c in self.counters.sinks.values()) or dead or self.errors
                state = "partial" if failed else "succeeded"
                self._finish_reindex(targets, source, options, dlq)
        except (PipelineError, ConnectorError, SieError) as e:
            self.errors.append(e.message if not e.field or e.message.startswith(e.field) else
                               f"{e.field}: {e.message}")
        finally:
            for t in targets:
                t.sink.close()
            try:
                self.emit("run_finished", state=state, dead_letters=dead)
                self.store.update_run(run.id, state=state, counters=self.counters.snapshot(), errors=self.errors,
                                      finished=True)
            except PipelineError as e:  # the run store itself fails (disk full, read-only): the report says so
                state = "failed"
                if e.message not in self.errors:
                    self.errors.append(e.message)
        return RunReport(run.id, state, self.counters.snapshot(), list(self.errors), dead,
                         round(time.monotonic() - started, 3))

    def dlq_path(self, shard: Shard) -> Any:
        assert self.p.dlq is not None
        if shard.count == 1:
            return self.p.dlq
        return self.p.dlq.with_name(f"{self.p.dlq.stem}.shard-{shard.index}-of-{shard.count}{self.p.dlq.suffix}")

    def _model(self) -> str | None:
        """The model of the first step that makes vectors: each record names it (`_sie_model`)."""
        return next((e[1] for s in self.p.steps if (e := s.config.encoder())), None)

    def _open_targets(self, options: RunOptions) -> list[Target]:
        schema = Schema.parse(sink_schema(self.p, directory_for(self.engine)))
        targets: list[Target] = []
        for i, spec in enumerate(self.p.sinks):
            try:
                targets.append(open_target(self.p.name, spec, schema, self.store, options.shard, full=options.full,
                                           emit=self.emit))
            except ConnectorError as e:
                for t in targets:
                    t.sink.close()
                raise PipelineError(f"sinks[{i}] ({spec.label}): {e.message}", field=f"sinks[{i}]",
                                    code=e.code) from None
        return targets

    def _finish_reindex(self, targets: list[Target], source: Reader | None, options: RunOptions,
                        dlq: DeadLetters) -> None:
        """Record, for each reindexed sink, whether this run completed its part of the new collection (the run
        whose part makes it whole switches: pipelines.targets.settle); drop expired retired collections."""
        pending = collections.Counter(e["sink"] for e in dlq.read())
        for t in targets:
            if t.reindex is not None:
                if source is None and not options.every_record:
                    why = (f"it switches {RECORDS_SWITCH}" if not options.retry_dlq else
                           "a --retry-dlq run replays dead letters only; a run over the whole source completes it")
                    self.emit("reindex_waiting", sink=t.key, new=t.reindex[1], reason=why,
                              message=f"{t.spec.label}: reindex into {t.reindex[1]} waits: {why}; queries keep "
                                      f"reading {t.reindex[0]} until then")
                else:
                    settle(self.p.name, t, self.store, options.shard, self.run_id,
                           self._incomplete(t, source, options, pending), self.emit)
            if t.reindex is None:
                drop_retired(self.p.name, t, self.store, self.emit)

    def _incomplete(self, target: Target, source: Reader | None, options: RunOptions,
                    pending: collections.Counter) -> str | None:
        """Why this run's part of a reindex is not complete in its new collection, or None when it is."""
        failed, waiting = self.counters.sinks[target.key]["failed"], pending.get(target.key, 0)
        if failed or waiting:
            what = (f"{waiting} source(s) failed and wait in the dead-letter file" if waiting else
                    f"{failed} record(s) failed in this run")
            return f"{what} (fix them or replay them with --retry-dlq, then rerun)"
        held = blockers(self.p.name, target, self.store, source, options.shard) if source is not None else {}
        if held:
            shown = "; ".join(f"{s} ({why})" for s, why in list(held.items())[:5])
            more = f"; and {len(held) - 5} more" if len(held) > 5 else ""
            return (f"{len(held)} source(s) that the old collection holds were refused this time, and switching "
                    f"would drop their records from the live index: {shown}{more}. Fix or remove them, then rerun")
        return None

    def _needs(self, target: Target, doc: Document) -> bool:
        state = target.states.get(doc.id)
        return state is None or state.hash != doc.hash or state.fingerprint != self.p.fingerprint()

    def _documents(self, options: RunOptions, dlq: DeadLetters, targets: list[Target],
                   seen: set[str]) -> tuple[Reader | None, Iterator[Work | Document | ObjectMark], set]:
        """(file or bucket source, or None; what to process; dead letters already resolved)."""
        if options.retry_dlq:
            works, resolved = self._replay(dlq, targets)
            return None, iter(works), resolved
        if options.documents is not None:
            return None, iter(options.documents), set()
        if isinstance(self.p.source, ObjectStoreSource):
            return self._objects(ObjectSource(self.p.source, options.shard, on_refused=self._refused), options,
                                 targets, seen)
        if not isinstance(self.p.source, FilesSource):
            raise PipelineError("source: this pipeline reads records posted with a run request "
                                "(POST /v1/pipelines/{name}/runs with records); none were given", field="records")
        source = FileSource(self.p.source, options.shard, on_refused=self._refused)
        paths = source.paths()
        self.emit("listed", files=len(paths))
        return source, source.documents(paths), set()

    def _objects(self, source: ObjectSource, options: RunOptions, targets: list[Target],
                 seen: set[str]) -> tuple[Reader, Iterator[Document | ObjectMark], set]:
        """A bucket's objects, less those every sink holds at their listed version: those are counted as
        listed and skipped, and their sources as seen, without a download."""
        entries = source.entries()
        self.emit("listed", files=len(entries))
        fingerprint, shard = self.p.fingerprint(), _shard_text(options.shard)
        for t in targets:
            t.objects = self.store.objects(self.p.name, t.state_key, shard)
        kept = unchanged(entries, [(t.states, t.objects) for t in targets], fingerprint, options.shard.owns)
        for key in sorted(kept):
            for source_id in sorted(kept[key]):
                seen.add(source_id)
                self.counters.add("listed")
                self.counters.add("skipped")
                for t in targets:
                    self.counters.add("skipped", 1, t.key)
                self.emit("skipped", source=source_id)
        return source, source.documents([e for e in entries if e.key not in kept]), set()

    def _refused(self, refusal: Refusal) -> None:
        self.counters.refuse(refusal)
        self.emit("refused", path=refusal.path, reason=refusal.reason)

    def _replay(self, dlq: DeadLetters, targets: list[Target]) -> tuple[list[Work], set]:
        by_key = {t.key: t for t in targets}
        works: dict[str, Work] = {}
        resolved: set[tuple[str, str]] = set()
        for entry in sorted(dlq.read(), key=lambda e: -e.get("time", 0)):  # newest first: its document wins
            target = by_key.get(entry["sink"])
            doc = Document(entry["source"], entry["document"]["text"], entry["document"]["metadata"])
            state = target.states.get(doc.id) if target else None
            done = state is not None and state.hash == doc.hash and state.fingerprint == self.p.fingerprint()
            superseded = state is not None and state.hash is not None and state.updated_at > entry["time"]
            if target is None or done or superseded:
                resolved.add((entry["sink"], entry["source"]))  # sink gone, already written, or newer content
                continue
            work = works.setdefault(doc.id, Work(doc, []))
            if target.key not in work.targets:
                work.targets.append(target.key)
        return list(works.values()), resolved

    # -- the three stages --------------------------------------------------------------------------
    def _pipeline(self, documents: Iterator[Work | Document], targets: list[Target], writer: Writer,
                  seen: set[str], dlq: DeadLetters) -> int:
        ctx = StepContext(self.engine, self.tokenizers, self.p.name)
        steps: list[IngestStep] = [step_class("ingest", s.name)(s.config, ctx) for s in self.p.steps]
        split = next((i for i, s in enumerate(steps) if s.uses_model), len(steps))
        per_source, batched = steps[:split], steps[split:]
        size = self.p.batch.size
        docs_q: queue.Queue = queue.Queue(maxsize=max(16, size * self.p.batch.queue))
        write_q: queue.Queue = queue.Queue(maxsize=self.p.batch.queue)
        failure: list[BaseException] = []
        dead = 0

        def release(work: Work | None) -> None:
            if work is not None and (work.targets or work.marks):  # a skipped source may carry its object's mark
                _put(docs_q, work, self.stop)

        def read() -> None:
            held: Work | None = None  # one source held back: the mark of the object it ends may follow it
            try:
                for item in documents:
                    if self.stop.is_set():
                        break
                    if isinstance(item, ObjectMark):
                        if held is not None and held.doc.origin == item.key:
                            held.marks.append(item)
                        continue
                    release(held)
                    work = held = item if isinstance(item, Work) else Work(item, [])
                    seen.add(work.doc.id)
                    self.counters.add("listed")
                    if not work.targets:
                        work.targets = [t.key for t in targets if self._needs(t, work.doc)]
                    for t in targets:
                        if t.key not in work.targets:
                            self.counters.add("skipped", 1, t.key)
                    if not work.targets:
                        self.counters.add("skipped")
                        self.emit("skipped", source=work.doc.id)
                        continue
                    self.counters.add("read")
                    self.emit("read", source=work.doc.id)
                if not self.stop.is_set():
                    release(held)
            except BaseException as e:
                failure.append(e)
                self.stop.set()
            finally:
                _put(docs_q, _DONE, self.stop, force=True)

        def transform() -> None:
            batch: list[Work] = []
            pending = 0
            try:
                while True:
                    item = docs_q.get()
                    if item is _DONE or self.stop.is_set():
                        break
                    work: Work = item
                    if not work.targets:  # only an object's mark rides on it: nothing to chunk or write
                        batch.append(work)
                        continue
                    try:
                        chunks = [Chunk(work.doc.id, 0, work.doc.text, 0, len(work.doc.text),
                                        {**work.doc.metadata, "source": work.doc.id})]
                        for step in per_source:
                            chunks = step.apply(chunks)
                        work.chunks = chunks
                    except Exception as e:
                        work.failed["*"] = f"steps: {_reason(e)}"
                    self.counters.add("chunked", len(work.chunks))
                    self.emit("chunked", source=work.doc.id, chunks=len(work.chunks))
                    batch.append(work)
                    pending += len(work.chunks)
                    if pending >= size:
                        _put(write_q, self._model_steps(batched, batch), self.stop)
                        batch, pending = [], 0
                if batch and not self.stop.is_set():
                    _put(write_q, self._model_steps(batched, batch), self.stop)
            except BaseException as e:
                failure.append(e)
                self.stop.set()
            finally:
                _put(write_q, _DONE, self.stop, force=True)

        threads = [threading.Thread(target=read, name="sie-pipeline-read", daemon=True),
                   threading.Thread(target=transform, name="sie-pipeline-steps", daemon=True)]
        for t in threads:
            t.start()
        try:
            while True:
                batch = write_q.get()
                if batch is _DONE:
                    break
                if self.stop.is_set():
                    continue
                for target in targets:
                    writer.write(target, batch)
                if not self.stop.is_set():
                    dead += self._dead_letters(dlq, batch)
        except BaseException:
            self.stop.set()
            raise
        finally:
            for t in threads:
                t.join(timeout=60)
        if failure:
            raise failure[0]
        return dead

    def _model_steps(self, steps: list[IngestStep], batch: list[Work]) -> list[Work]:
        """Run the model steps over the whole batch; on failure, retry, then source by source."""
        live = [w for w in batch if not w.failed and w.chunks]  # chunkless: nothing for the models
        if not steps or not live:
            return self._processed(batch)
        try:
            self._apply(steps, live, retries=self.p.retry.attempts)
        except Exception as e:
            if _engine_busy(e):
                # No document is at fault (the engine is gone, or still refusing work for want of memory or
                # queue room): stop here rather than dead-letter the whole corpus, each batch after its own
                # full retry budget. What is not committed is simply redone by a rerun.
                raise PipelineError(f"engine: {e.message.removeprefix('server: ')} (after "
                                    f"{self.p.retry.attempts} attempt(s)); the run stopped: rerun to resume",
                                    field="engine", code=e.code) from None
            if len(live) == 1:
                live[0].failed["*"] = f"steps: {_reason(e)}"
            else:
                for work in live:  # isolate the source(s) the engine refuses
                    try:
                        self._apply(steps, [work], retries=1)
                    except Exception as e2:
                        work.failed["*"] = f"steps: {_reason(e2)}"
        return self._processed(batch)

    def _processed(self, batch: list[Work]) -> list[Work]:
        done = sum(len(w.chunks) for w in batch if not w.failed)
        self.counters.add("processed", done)
        self.emit("processed", chunks=done, sources=len(batch))
        return batch

    def _apply(self, steps: list[IngestStep], works: list[Work], retries: int) -> None:
        for attempt in range(retries):
            chunks = [c for w in works for c in w.chunks]
            try:
                for step in steps:
                    chunks = step.apply(chunks)
            except Exception as e:
                if attempt + 1 >= retries or not _transient(e) or self.stop.is_set():
                    raise
                delay = min(self.p.retry.max_backoff_s, self.p.retry.backoff_s * 2 ** attempt)
                delay *= 0.5 + random.random() / 2
                self.emit("retry", stage="steps", attempt=attempt + 1, error=_reason(e), delay_s=round(delay, 3))
                self.stop.wait(delay)
                continue
            by_source: dict[str, list[Chunk]] = {}
            for c in chunks:
                by_source.setdefault(c.source_id, []).append(c)
            for w in works:
                w.chunks = by_source.get(w.doc.id, [])
            return

    def _dead_letters(self, dlq: DeadLetters, batch: list[Work]) -> int:
        entries = []
        for w in batch:
            for sink, reason in w.failed.items():
                for key in (w.targets if sink == "*" else [sink]):
                    entries.append({"run_id": self.run_id, "pipeline": self.p.name, "sink": key, "source": w.doc.id,
                                    "error": reason, "document": {"text": w.doc.text, "metadata": w.doc.metadata}})
                    self.emit("dead_letter", sink=key, source=w.doc.id, error=reason)
                    if len(self.errors) < MAX_ERRORS:
                        self.errors.append(f"dead letter: {key}: {w.doc.id}: {reason}")
            if w.failed:
                self.counters.add("failed")
        return dlq.append(entries)

    def _sync_deletions(self, options: RunOptions, source: Reader | None, targets: list[Target],
                        writer: Writer, seen: set[str]) -> None:
        wanted = True if options.full else options.sync_deletions
        if wanted is None:
            wanted = isinstance(self.p.source, FilesSource | ObjectStoreSource) and self.p.source.sync_deletions
        if not wanted:
            return
        if source is None and not options.every_record:
            self.errors.append("sync_deletions: only a run over the whole file source, or a records run with "
                               "full: true, can tell what disappeared; nothing was deleted")
            return
        for target in targets:  # a refused source was not read this time: it did not vanish
            gone = sorted(s for s in target.states if s not in seen and options.shard.owns(s)
                          and not (source is not None and source.protects(s)))
            for start in range(0, len(gone), 500):
                deleted = writer.delete_sources(target, gone[start:start + 500])
                if deleted < 0:
                    self.errors.append(f"{target.spec.label}: could not delete vanished sources; the next run retries")
                    break
                self.counters.add("deleted", deleted, target.key)
                self.emit("vanished", sink=target.key, sources=len(gone[start:start + 500]), deleted=deleted)
            if isinstance(source, ObjectSource):  # marks of objects no longer listed
                self.store.forget_objects(self.p.name, target.state_key, _shard_text(options.shard),
                                          [k for k in target.objects if k not in source.listed])

    def _prune_dlq(self, dlq: DeadLetters, committed: set[tuple[str, str]], resolved: set[tuple[str, str]]) -> None:
        entries = dlq.read()
        keep = [e for e in entries if (e["sink"], e["source"]) not in committed | resolved]
        if len(keep) != len(entries):
            dlq.rewrite(keep)


def _shard_text(shard: Shard) -> str:
    return f"{shard.index}/{shard.count}"


def _put(q: queue.Queue, item: Any, stop: threading.Event, force: bool = False) -> None:
    """Put, waking up to notice a stop (a full queue must not block a stopping run forever)."""
    while True:
        try:
            q.put(item, timeout=0.2)
            return
        except queue.Full:
            if stop.is_set() and not force:
                return
            if stop.is_set():
                try:
                    q.get_nowait()  # make room for the end marker
                except queue.Empty:
                    pass


def _transient(e: BaseException) -> bool:
    """Worth retrying: an error without a code (a crash, a dropped connection), or one whose code the server's
    edge answers with a retryable status."""
    return not isinstance(getattr(e, "code", None), str) or http_status(e) in TRANSIENT_STATUS


def _engine_busy(e: BaseException) -> bool:
    """The engine is gone or refused the work for now (503 unreachable, out of memory or still loading; 429
    queue full): the same batch would fail source by source too, so isolating sources would only
    dead-letter them all."""
    return isinstance(getattr(e, "code", None), str) and http_status(e) in (429, 503)


def _reason(e: BaseException) -> str:
    return f"{getattr(e, 'code', type(e).__name__)}: {getattr(e, 'message', None) or e}"
