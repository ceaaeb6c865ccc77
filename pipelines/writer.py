"""The write stage: a batch of processed sources goes to each sink that needs it, in an order that
makes a kill -9 at any instant harmless.

For each sink and batch:
  1. raise the sources' high-water marks in the run store (committed before anything is written);
  2. upsert every chunk (ids are deterministic, so a rewrite replaces, never duplicates);
  3. delete the stale chunks: indices below the high-water mark that this version no longer has;
  4. commit (hash, fingerprint, high-water = new chunk count) in the run store.
  5. for a bucket source: record the version of each object all of whose documents are now committed
     into this sink (pipelines.objects), so the next run skips it unread.
A crash before 4 leaves the source uncommitted, so the next run does it again; the high-water mark
still covers every chunk any interrupted version wrote, so none is left behind. New chunks are always
written before stale ones are deleted. Upserts and deletes are retried with exponential backoff; what
still fails is returned for the dead-letter file and not committed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors import Sink, make_record, record_id
from pipelines.sources import Document
from pipelines.spec import RetryConfig, SinkSpec
from pipelines.steps.base import Chunk
from pipelines.store import RunStore, SourceState

Emit = Callable[..., None]


@dataclass
class Target:
    """One sink of the run, with the run store's view of its sources. During a blue/green reindex the
    sink is pinned to the new physical collection and the rows live under `state_key` until the switch."""

    spec: SinkSpec
    sink: Sink
    states: dict[str, SourceState]
    lock: threading.Lock = field(default_factory=threading.Lock)
    state_key: str = ""
    reindex: tuple[str, str] | None = None     # (old physical, new physical)
    objects: dict[str, Any] = field(default_factory=dict)   # a bucket source's object marks (pipelines.objects)

    def __post_init__(self) -> None:
        self.state_key = self.state_key or self.spec.key

    @property
    def key(self) -> str:
        return self.spec.key


@dataclass
class Work:
    """One source on its way through the run: its document, the sinks that need it, its chunks."""

    doc: Document
    targets: list[str]
    chunks: list[Chunk] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)   # sink key ("*" = every target) -> reason
    marks: list[Any] = field(default_factory=list)         # objects read whole, ending with this source

    @property
    def high_water(self) -> int:
        return max((c.index for c in self.chunks), default=-1) + 1


def chunk_key(pipeline: str, source_id: str, index: int) -> dict[str, Any]:
    """The natural key of a record: its id is uuid5 of this (connectors.ids)."""
    return {"pipeline": pipeline, "source": source_id, "chunk": index}


def build_records(pipeline: str, version: str, model: str | None, work: Work) -> list[Any]:
    out = []
    for ch in work.chunks:
        metadata = {**ch.metadata, "chunk": {"index": ch.index, "start": ch.start, "end": ch.end}}
        out.append(make_record(chunk_key(pipeline, ch.source_id, ch.index), ch.text, ch.vectors, metadata,
                               model=model, version=version))
    return out


class Writer:
    def __init__(self, pipeline: str, version: str, fingerprint: str, model: str | None, store: RunStore,
                 retry: RetryConfig, emit: Emit, stop: threading.Event, shard: str = "0/1") -> None:
        self.pipeline, self.version, self.fingerprint, self.model = pipeline, version, fingerprint, model
        self.store, self.retry, self.emit, self.stop, self.shard = store, retry, emit, stop, shard
        self.committed: set[tuple[str, str]] = set()   # (sink, source) committed by this run
        self._incomplete: set[tuple[str, str]] = set()  # (sink, object) with a source this run did not commit

    def write(self, target: Target, batch: list[Work]) -> None:
        """Steps 1-5 above for the sources of one batch that `target` needs; failures land in work.failed."""
        works = [w for w in batch if target.key in w.targets and not w.failed.get("*")]
        if works:
            self._write(target, works)
        self._mark_objects(target, batch)

    def _mark_objects(self, target: Target, batch: list[Work]) -> None:
        """Step 5. Sources come in read order, so an object's mark arrives after all of its sources."""
        for w in batch:
            if w.doc.origin is not None and target.key in w.targets and (w.failed.get("*") or w.failed.get(target.key)):
                self._incomplete.add((target.key, w.doc.origin))
        rows = [(m.key, m.version, self.fingerprint, m.documents) for w in batch for m in w.marks
                if (target.key, m.key) not in self._incomplete]
        if rows:
            self.store.commit_objects(self.pipeline, target.state_key, self.shard, rows)

    def _write(self, target: Target, works: list[Work]) -> None:
        with target.lock:
            raised: dict[str, int] = {}
            for w in works:
                old = target.states.get(w.doc.id)
                raised[w.doc.id] = max(old.high_water if old else 0, w.high_water)
            self.store.raise_high_water(self.pipeline, target.state_key, raised.items())
            for w in works:
                old = target.states.get(w.doc.id)
                target.states[w.doc.id] = SourceState(old.hash if old else None, old.fingerprint if old else None,
                                                      raised[w.doc.id], time.time())
            self.emit("begin", sink=target.key, sources=len(works))

            records, owner = [], []
            for w in works:
                for record in build_records(self.pipeline, self.version, self.model, w):
                    records.append(record)
                    owner.append(w)
            reasons = self._retrying(target, "upsert", records, lambda items: _upsert(target.sink, items))
            for i, reason in reasons.items():
                owner[i].failed.setdefault(target.key, reason)
            self.emit("upserted", sink=target.key, written=len(records) - len(reasons), failed=len(reasons))

            ok = [w for w in works if target.key not in w.failed]
            stale: list[str] = []
            for w in ok:
                kept = {c.index for c in w.chunks}
                stale += [record_id(chunk_key(self.pipeline, w.doc.id, i)) for i in range(raised[w.doc.id])
                          if i not in kept]
            if stale:
                failed = self._retrying(target, "delete", stale, lambda ids: _delete(target.sink, ids))
                if failed:
                    reason = next(iter(failed.values()))
                    for w in ok:
                        w.failed.setdefault(target.key, f"deleting stale chunks: {reason}")
                    ok = []
                    stale = []
            self.emit("deleted", sink=target.key, deleted=len(stale))

            rows = [(w.doc.id, w.doc.hash, self.fingerprint, w.high_water, len(w.chunks)) for w in ok]
            self.store.commit(self.pipeline, target.state_key, rows)
            for w in ok:
                target.states[w.doc.id] = SourceState(w.doc.hash, self.fingerprint, w.high_water, time.time())
                self.committed.add((target.key, w.doc.id))
            self.emit("committed", sink=target.key, sources=len(ok), records=sum(len(w.chunks) for w in ok))

    def delete_sources(self, target: Target, source_ids: list[str]) -> int:
        """Remove every chunk of sources that disappeared, then forget them. Returns records deleted."""
        with target.lock:
            ids = [record_id(chunk_key(self.pipeline, s, i)) for s in source_ids
                   for i in range(target.states[s].high_water)]
            if ids and self._retrying(target, "delete", ids, lambda batch: _delete(target.sink, batch)):
                return -1
            self.store.forget(self.pipeline, target.state_key, source_ids)
            for s in source_ids:
                target.states.pop(s, None)
            return len(ids)

    def _retrying(self, target: Target, action: str, items: list[Any],
                  call: Callable[[list[Any]], dict[int, str]]) -> dict[int, str]:
        """Index (into items) -> reason, for what still failed after the configured attempts."""
        pending = list(range(len(items)))
        reasons: dict[int, str] = {}
        for attempt in range(self.retry.attempts):
            try:
                failed = call([items[i] for i in pending])
                reasons = {pending[i]: why for i, why in failed.items()}
            except Exception as e:  # database client errors vary by backend; all are retried, then reported
                reasons = {i: f"{type(e).__name__}: {getattr(e, 'message', None) or e}" for i in pending}
            if not reasons:
                return {}
            pending = sorted(reasons)
            if attempt + 1 < self.retry.attempts and not self.stop.is_set():
                delay = min(self.retry.max_backoff_s, self.retry.backoff_s * 2 ** attempt) * (0.5 + random.random() / 2)
                self.emit("retry", sink=target.key, action=action, attempt=attempt + 1, pending=len(pending),
                          error=next(iter(reasons.values())), delay_s=round(delay, 3))
                self.stop.wait(delay)
        return reasons


def _upsert(sink: Sink, records: list[Any]) -> dict[int, str]:
    result = sink.upsert(records)
    return {item.index: item.error or "refused" for item in result.failed}


def _delete(sink: Sink, ids: list[str]) -> dict[int, str]:
    sink.delete(ids=ids)
    return {}
