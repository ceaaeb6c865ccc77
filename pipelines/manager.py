"""Runs started over REST: each in a daemon thread, one at a time per pipeline (a second request for
the same pipeline waits, queued), state and counters in the run store where GET /v1/runs/{id} reads them.

Each pipeline uses the run store `sie run FILE` would use (SIE_RUN_STORE, else .sie/runs.sqlite next to
its file), so runs from the CLI and over REST share what they know. The in-process engine is the
server's own; a pipeline with `engine: <url>` gets a client per run. On
shutdown unfinished runs are told to stop and end as `interrupted`; a rerun completes them (the runner
never loses or duplicates records). Runs a killed server left behind are marked interrupted at start.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import defaultdict
from typing import Any

from pipelines.engines import open_engine
from pipelines.errors import RunNotFound
from pipelines.library import PipelineLibrary
from pipelines.query import QueryRunner
from pipelines.runner import IngestRunner, RunOptions
from pipelines.sources import posted_documents
from pipelines.spec import Pipeline, RecordsSource
from pipelines.store import RunRecord, RunStore, open_store

log = logging.getLogger(__name__)


class RunManager:
    def __init__(self, library: PipelineLibrary, engine: Any | None, store_url: str | None = None) -> None:
        self.library, self.engine = library, engine
        self._stores: dict[str, RunStore] = {}
        self._store_url = store_url
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._queries: dict[str, QueryRunner] = {}
        self._query_engines: list[Any] = []
        for p in library.pipelines.values():
            if p.kind == "ingest":
                self.store_for(p).interrupt_unfinished([p.name])
        atexit.register(self.close)

    def store_for(self, p: Pipeline) -> RunStore:
        where = self._store_url or str(p.base_dir / ".sie" / "runs.sqlite")
        with self._guard:
            if where not in self._stores:
                self._stores[where] = open_store(where)
            return self._stores[where]

    def get_run(self, run_id: str) -> RunRecord:
        for store in list(self._stores.values()):
            try:
                return store.get_run(run_id)
            except RunNotFound:
                continue
        raise RunNotFound(f"run: no run with id {run_id!r}", field="run_id")

    def start(self, p: Pipeline, *, records: Any = None, sync_deletions: bool | None = None,
              retry_dlq: bool = False, full: bool = False,
              idempotency_key: str | None = None) -> tuple[RunRecord, bool]:
        """(run, created). Posted records are checked here, so a bad one is a 400, not a failed run."""
        documents = None
        if records is not None:
            if not isinstance(p.source, RecordsSource):
                from pipelines.errors import PipelineError

                where = getattr(p.source, "root", None) or getattr(p.source, "location", "")
                raise PipelineError(f"records: pipeline {p.name!r} reads files under {where}; records "
                                    "can be posted only to a pipeline whose source is {type: records}",
                                    field="records")
            documents = posted_documents(p.source, records)
        request = {"records": len(records) if records is not None else None, "sync_deletions": sync_deletions,
                   "retry_dlq": retry_dlq, "full": full}
        run, created = self.store_for(p).create_run(p.name, request=request, shard="0/1",
                                                    idempotency_key=idempotency_key)
        if created:
            options = RunOptions(sync_deletions=sync_deletions, retry_dlq=retry_dlq, documents=documents, full=full)
            thread = threading.Thread(target=self._execute, args=(p, run, options), daemon=True,
                                      name=f"sie-run-{p.name}")
            self._threads.append(thread)
            thread.start()
        return run, created

    def _execute(self, p: Pipeline, run: RunRecord, options: RunOptions) -> None:
        with self._locks[p.name]:
            store = self.store_for(p)
            if self._stop.is_set():
                store.update_run(run.id, state="interrupted", finished=True)
                return
            engine, close = open_engine(p.engine, shared=self.engine)
            try:
                IngestRunner(p, engine, store, stop=self._stop).run(options, run)
            except Exception as e:  # a bug must not leave the run 'running' forever
                log.exception("run %s of %s failed", run.id, p.name)
                store.update_run(run.id, state="failed", errors=[f"internal error: {type(e).__name__}: {e}"],
                                      finished=True)
            finally:
                close()

    def query_runner(self, p: Pipeline) -> QueryRunner:
        """One runner per query pipeline, kept (its sink stays open between queries)."""
        with self._guard:
            if p.name not in self._queries:
                engine, close = open_engine(p.engine, shared=self.engine)
                self._query_engines.append(close)
                self._queries[p.name] = QueryRunner(p, engine)
            return self._queries[p.name]

    def close(self, wait_s: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=wait_s)
        with self._guard:
            for runner in self._queries.values():
                runner.close()
            self._queries.clear()
            for close in self._query_engines:
                close()
            self._query_engines.clear()
            for store in self._stores.values():
                store.close()
            self._stores.clear()
