"""Faults the runner must survive, with real processes: a remote engine SIGKILLed mid-ingest (back on
the same port within the retry budget, or gone for longer), a Chroma server lost by one of two sinks,
a run store whose disk turns read-only or fills up, and SIGTERM to `sie serve --pipelines` during a
run started over REST. Each ends with a rerun and exactly the records of a clean run.

(test_failures.py covers one Chroma sink going away and an engine lost in-process; test_crash_safety.py
kill -9 of the runner itself.)"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from pipeline_helpers import chunk_ids, ingest, open_sink_of, paragraphs, write_corpus, write_pipeline
from servers import Server

# 24 sources of 2 chunks, batches of 4 chunks: 12 engine calls, so a fault after the first commit
# lands with most of the run still ahead.
DOCS = {f"d{i:02}.md": 2 for i in range(24)}
REMOTE = """\
    name: faults
    engine: {{url: "{url}", max_retries: {client_retries}, timeout_s: 10}}
    source: {{type: files, root: ./docs}}
    steps:
      - chunk: {{by: paragraphs, size: 1}}
      - encode: {{model: tiny/embed}}
    sinks:
      - {{type: lancedb, uri: ./lance, collection: faults}}
    batch: {{size: 4, queue: 1}}
    retry: {{attempts: {attempts}, backoff_s: {backoff_s}, max_backoff_s: 2}}
"""


def write_docs(folder: Path) -> None:
    write_corpus(folder / "docs", {n: paragraphs(n, 1, c) for n, c in DOCS.items()})


def assert_exactly(path: Path, counts: dict[str, int], index: int = 0) -> None:
    """The sink holds exactly one record per chunk of `counts`, each with its text."""
    sink = open_sink_of(path, index)
    try:
        expected = chunk_ids("faults", counts)
        assert sink.count() == len(expected)
        stored = sink.get(list(expected))
        assert set(stored) == set(expected)
        for rid, (source, i) in expected.items():
            assert stored[rid].text.startswith(f"{source} version 1 paragraph {i}:")
    finally:
        sink.close()


def remote_ingest(path: Path, **options):
    """Run the pipeline in-process against the engine its file names (a `SieClient`)."""
    from pipelines.engines import open_engine
    from pipelines.spec import load_pipeline

    client, close = open_engine(load_pipeline(path).engine)
    try:
        return ingest(path, client, **options)
    finally:
        close()


def engine_env(pipeline_catalog: Path, logs: Path) -> dict:
    return {"SIE_CATALOG_DIRS": str(pipeline_catalog), "SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1",
            "SIE_TEST_LOG_DIR": str(logs)}


def test_engine_killed_and_restarted_on_the_same_port_the_run_retries_and_finishes_exactly(
        tmp_path, pipeline_catalog):
    env = engine_env(pipeline_catalog, tmp_path)
    engines = [Server(env, ("--preload", "tiny/embed"))]
    events: list[tuple[str, dict]] = []

    killed, kill_event, restarted = threading.Event(), [], []

    def restart() -> None:
        began = time.monotonic()
        try:
            engines.append(Server(env, ("--preload", "tiny/embed"), port=engines[0].port))
            restarted.append(f"back after {time.monotonic() - began:.1f} s")
        except Exception as e:  # said by the assertion below, not lost in this thread
            restarted.append(f"restart failed: {e}")

    def listener(event: str, data: dict) -> None:
        events.append((event, data))
        if event == "committed" and not killed.is_set():
            killed.set()
            kill_event.append(data)
            engines[0].stop(signal.SIGKILL)
            threading.Thread(target=restart, daemon=True).start()

    try:
        write_docs(tmp_path)
        # Budget per batch: 4 attempts of 9 client tries each (>= 16 s of backoff each): a minute at the
        # least, several times what a restart takes on a busy machine.
        path = write_pipeline(tmp_path, REMOTE.format(url=engines[0].url, client_retries=8, attempts=4,
                                                      backoff_s=1))
        report = remote_ingest(path, listener=listener)
    finally:
        for engine in engines:
            engine.stop()
    assert report.state == "succeeded", (report.errors, restarted)
    assert engines[0].proc.returncode == -signal.SIGKILL and len(engines) == 2
    after = [e for e, _ in events[events.index(("committed", kill_event[0])) + 1:]]
    assert "processed" in after, "the kill landed after the last engine call"   # so the new engine served it
    (sink,) = report.counters["sinks"].values()
    assert sink["committed"] == len(DOCS) and sink["failed"] == 0 and report.dead_letters == 0
    assert_exactly(path, DOCS)


def test_engine_gone_past_the_retry_budget_fails_the_run_clearly_and_a_rerun_completes(
        tmp_path, pipeline_catalog, engine_server):
    engine = Server(engine_env(pipeline_catalog, tmp_path), ("--preload", "tiny/embed"))
    write_docs(tmp_path)
    path = write_pipeline(tmp_path, REMOTE.format(url=engine.url, client_retries=1, attempts=2, backoff_s=0.05))
    killed: list[float] = []

    def listener(event: str, data: dict) -> None:
        if event == "committed" and not killed:
            engine.stop(signal.SIGKILL)
            killed.append(time.monotonic())

    try:
        report = remote_ingest(path, listener=listener)
        took = time.monotonic() - killed[0]
    finally:
        engine.stop()
    assert report.state == "failed", report
    (error,) = report.errors
    assert error.startswith(f"engine: cannot reach {engine.url}") and "rerun to resume" in error, error
    assert report.dead_letters == 0 and not (tmp_path / ".sie" / "dlq" / "faults.jsonl").exists()
    assert took < 20, f"a dead engine should stop the run, not be retried batch after batch ({took:.1f} s)"
    (sink,) = report.counters["sinks"].values()
    committed = sink["committed"]
    assert 0 < committed < len(DOCS)
    from pipelines.store import open_store

    store = open_store(tmp_path / ".sie" / "runs.sqlite")
    try:
        assert store.get_run(report.run_id).state == "failed"
        assert sum(s.hash is not None for s in store.sources("faults", open_sink_key(path)).values()) == committed
    finally:
        store.close()

    # Resumable: the rerun (against a live engine) does only what was not committed, and ends exact.
    path = write_pipeline(tmp_path, REMOTE.format(url=engine_server.url, client_retries=1, attempts=2,
                                                  backoff_s=0.05))
    rerun = remote_ingest(path)
    assert rerun.state == "succeeded", rerun.errors
    assert rerun.counters["stages"]["skipped"] == committed
    assert rerun.counters["stages"]["read"] == len(DOCS) - committed
    assert_exactly(path, DOCS)


def open_sink_key(path: Path, index: int = 0) -> str:
    from pipelines.spec import load_pipeline

    return load_pipeline(path).sinks[index].key
