"""Faults the runner must survive, with real processes: a remote engine SIGKILLed mid-ingest (back on
the same port within the retry budget, or gone for longer), a Chroma server lost by one of two sinks,
a run store whose disk turns read-only or fills up, and SIGTERM to `sie serve --pipelines` during a
run started over REST. Each ends with a rerun and exactly the records of a clean run.

(test_failures.py covers one Chroma sink going away and an engine lost in-process; test_crash_safety.py
kill -9 of the runner itself.)"""

from __future__ import annotations

import errno
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pipeline_helpers import chunk_ids, ingest, open_sink_of, paragraphs, write_corpus, write_pipeline
from servers import SIE, ChromaProcess, Server, chroma_cli

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


# -- a Chroma server lost by one of two sinks ------------------------------------------------------
FANOUT = """\
    name: faults
    source: {{type: files, root: ./docs}}
    steps:
      - chunk: {{by: paragraphs, size: 1}}
      - encode: {{model: tiny/embed}}
    sinks:
      - {{type: lancedb, uri: ./lance, collection: faults}}
      - {{type: chroma, url: "{url}", collection: faults}}
    batch: {{size: 4, queue: 1}}
    retry: {{attempts: 2, backoff_s: 0.05, max_backoff_s: 0.2}}
"""


@pytest.mark.skipif(chroma_cli() is None, reason="the chroma CLI (pip package chromadb) is missing")
def test_one_of_two_sinks_lost_mid_run_the_other_keeps_committing_and_the_lost_one_resumes(tmp_path, engine):
    chroma = ChromaProcess(tmp_path / "chroma-server").start()
    try:
        write_docs(tmp_path)
        path = write_pipeline(tmp_path, FANOUT.format(url=chroma.url))
        lance, remote = (open_sink_key(path, i) for i in range(2))

        def listener(event: str, data: dict) -> None:
            if event == "committed" and data["sink"] == remote and chroma.proc is not None:
                chroma.stop()       # after the first batch is in both: the rest reaches LanceDB only

        report = ingest(path, engine, listener=listener)
        assert report.state == "partial"
        sinks = report.counters["sinks"]
        assert sinks[lance]["committed"] == len(DOCS) and sinks[lance]["failed"] == 0
        lost = len(DOCS) - sinks[remote]["committed"]
        assert 0 < lost < len(DOCS) and report.dead_letters == lost
        assert all(e.startswith(f"dead letter: {remote}: ") for e in report.errors), report.errors

        chroma.start()
        rerun = ingest(path, engine)
        assert rerun.state == "succeeded", rerun.errors
        sinks = rerun.counters["sinks"]
        assert sinks[lance]["skipped"] == len(DOCS) and sinks[lance]["written"] == 0
        assert sinks[remote]["committed"] == lost and sinks[remote]["skipped"] == len(DOCS) - lost
        assert not (tmp_path / ".sie" / "dlq" / "faults.jsonl").exists()   # the rerun resolved them all
        assert_exactly(path, DOCS, 0)
        assert_exactly(path, DOCS, 1)
    finally:
        chroma.stop()


# -- the run store's disk full or read-only --------------------------------------------------------
LOCAL = """\
    name: faults
    source: {type: files, root: ./docs}
    steps:
      - chunk: {by: paragraphs, size: 1}
      - encode: {model: tiny/embed}
    sinks:
      - {type: lancedb, uri: ./lance, collection: faults}
    batch: {size: 4, queue: 1}
"""


@pytest.fixture()
def small_disk(tmp_path):
    """A 2 MiB tmpfs: a real filesystem that fills up (ENOSPC) and can be remounted read-only."""
    where = tmp_path / "store-disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


def fill(folder: Path) -> Path:
    """Write a file until the filesystem is full."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return filler


def assert_store_knows_every_record(path: Path, store_path: Path) -> None:
    """Every record in the sink is one the run store has a row for, below that row's high-water mark
    (so a rerun finds it again), and there is no record outside a clean run's ids."""
    from pipelines.store import open_store

    store = open_store(store_path)
    try:
        known = store.sources("faults", open_sink_key(path))
    finally:
        store.close()
    sink = open_sink_of(path)
    try:
        expected = chunk_ids("faults", DOCS)
        stored = sink.get(list(expected))
        assert sink.count() == len(stored)
        for rid in stored:
            source, i = expected[rid]
            assert source in known and i < known[source].high_water, (source, i)
    finally:
        sink.close()


def test_run_store_disk_full_mid_run_fails_naming_the_path_and_a_rerun_completes(tmp_path, engine, small_disk):
    write_docs(tmp_path)
    path = write_pipeline(tmp_path, LOCAL)
    store_path = small_disk / "runs.sqlite"
    filled: list[Path] = []

    def listener(event: str, data: dict) -> None:
        if event == "committed" and not filled:
            filled.append(fill(small_disk))

    report = ingest(path, engine, store_path=store_path, listener=listener)
    assert report.state == "failed"
    assert any(e.startswith(f"run store ({store_path}): ") and "full" in e for e in report.errors), report.errors
    filled[0].unlink()
    assert_store_knows_every_record(path, store_path)
    rerun = ingest(path, engine, store_path=store_path)
    assert rerun.state == "succeeded", rerun.errors
    assert_exactly(path, DOCS)


def test_run_store_disk_read_only_the_run_refuses_to_start_naming_the_path(tmp_path, engine, small_disk, cli_env):
    write_docs(tmp_path)
    path = write_pipeline(tmp_path, LOCAL)
    store_path = small_disk / "runs.sqlite"
    write_corpus(tmp_path / "docs", {"d00.md": paragraphs("d00.md", 1, 2)})
    first = ingest(path, engine, store_path=store_path)       # the store exists and knows the sink's records
    assert first.state == "succeeded"
    write_corpus(tmp_path / "docs", {"new.md": "a document the store would have to learn about"})
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        proc = subprocess.run([SIE, "run", str(path), "--store", str(store_path)], env=cli_env, capture_output=True,
                              text=True, timeout=120)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"run store ({store_path}): cannot open it: " in proc.stderr, proc.stderr
    assert "its folder is read-only" in proc.stderr, proc.stderr
    assert_store_knows_every_record(path, store_path)         # nothing was written that it does not know
    sink = open_sink_of(path)
    assert sink.count() == 2 * len(DOCS)
    sink.close()
    rerun = ingest(path, engine, store_path=store_path)
    assert rerun.state == "succeeded" and rerun.counters["stages"]["read"] == 1


# -- SIGTERM to `sie serve --pipelines` during a run started over REST ------------------------------
def test_sigterm_during_a_rest_run_marks_it_interrupted_and_a_new_post_resumes_it(tmp_path, pipeline_catalog):
    from pipelines.store import open_store

    docs = {f"s{i:03}.md": 2 for i in range(80)}     # 80 batches of 2 chunks: seconds of work, not ms
    write_corpus(tmp_path / "docs", {n: paragraphs(n, 1, c) for n, c in docs.items()})
    key = open_sink_key(write_pipeline(tmp_path, LOCAL.replace("size: 4", "size: 2")))
    env = {**engine_env(pipeline_catalog, tmp_path), "SIE_API_KEYS": "faults-key"}
    server = Server(env, ("--pipelines", str(tmp_path)))
    try:
        with server.client() as c:
            run_id = c.post("/v1/pipelines/faults/runs", json={}).json()["id"]
            deadline = time.monotonic() + 60
            while c.get(f"/v1/runs/{run_id}").json()["counters"].get("sinks", {}).get(key, {}).get("committed", 0) == 0:
                assert time.monotonic() < deadline, server.output()
                time.sleep(0.05)
        rc = server.stop(signal.SIGTERM)
        # uvicorn re-raises SIGTERM once it has shut down: the exit status says the signal, not a kill
        assert rc in (0, -signal.SIGTERM), rc
    finally:
        server.stop()
    store = open_store(tmp_path / ".sie" / "runs.sqlite")
    try:
        interrupted = store.get_run(run_id)
        committed = sum(s.hash is not None for s in store.sources("faults", key).values())
    finally:
        store.close()
    assert interrupted.state == "interrupted" and interrupted.finished_at is not None, interrupted
    assert interrupted.errors == [], interrupted.errors
    assert 0 < committed < len(docs), "SIGTERM landed after the run had finished"

    server = Server(env, ("--pipelines", str(tmp_path)))
    try:
        with server.client() as c:
            resumed = c.post("/v1/pipelines/faults/runs", json={}).json()
            deadline = time.monotonic() + 120
            while (run := c.get(f"/v1/runs/{resumed['id']}").json())["state"] in ("queued", "running"):
                assert time.monotonic() < deadline, server.output()
                time.sleep(0.1)
    finally:
        server.stop()
    assert run["state"] == "succeeded", run
    assert run["counters"]["stages"]["skipped"] == committed
    assert run["counters"]["stages"]["read"] == len(docs) - committed
    sink = open_sink_of(tmp_path / "pipeline.yaml")
    try:
        assert sink.count() == 2 * len(docs)
    finally:
        sink.close()
