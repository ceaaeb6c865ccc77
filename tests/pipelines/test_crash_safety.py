"""kill -9 at any point of a run, then a rerun: every sink holds exactly the records a clean run leaves
(no loss, no duplicates, no stale chunk of any interrupted version), property-based over kill points.

Each run is a real `sie run --progress jsonl` process against a live `sie serve` (the remote engine keeps
each run cheap). An interrupted run gets SIGKILL from inside (kill_at.py) right after the n-th event
of a kind (begin / upserted / deleted / committed of a batch, a source read, deletions of vanished
sources), plus a delay of 0-30 ms: kills land exactly between the steps of the write protocol (raise
high-water, upsert, delete stale, commit) and at arbitrary instants inside them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pipeline_helpers import chunk_ids, open_sink_of, paragraphs, write_corpus, write_pipeline
from servers import SIE

PIPELINE = """\
    name: crash
    engine: {url}
    source: {{type: files, root: ./docs, sync_deletions: true}}
    steps:
      - chunk: {{by: paragraphs, size: 1}}
      - encode: {{model: tiny/embed}}
    sinks:
      - {sink}
    batch: {{size: 3, queue: 2}}
"""
KILLER = Path(__file__).with_name("kill_at.py")
SINKS = {"lancedb": "{type: lancedb, uri: ./lance, collection: crash}",
         "chroma": "{type: chroma, path: ./chroma, collection: crash}"}
# Three versions of a corpus: shrinking, growing, vanishing and appearing documents.
V1 = {"a.md": 4, "b.md": 2, "c.md": 3, "d.md": 1, "e.md": 5}
V2 = {"a.md": 6, "b.md": 1, "c.md": 3, "d.md": None, "f.md": 2, "e.md": 2}
V3 = {"a.md": 1, "b.md": 3, "c.md": 3, "f.md": 4, "g.md": 1, "e.md": None}


def write_version(root: Path, version: dict, number: int, previous: dict | None = None) -> dict[str, int]:
    """Write a corpus version (unchanged counts keep the old text); returns {source: chunks}."""
    docs = {}
    for name, n in version.items():
        same = previous is not None and previous.get(name) == n
        docs[name] = None if n is None else None if same else paragraphs(name, number, n)
    write_corpus(root, {k: v for k, v in docs.items() if v is not None or version[k] is None})
    return {k: v for k, v in version.items() if v is not None}


def sie_run(folder: Path, env: dict, kill_at: tuple[str, int] | None = None, delay_ms: int = 0) -> tuple[int, int]:
    """(return code, events printed); kill_at=(event, n): SIGKILL after the n-th such event (+ delay_ms)."""
    file = str(folder / "pipeline.yaml")
    command = [SIE, "run", file, "--progress", "jsonl"] if kill_at is None else \
        [sys.executable, str(KILLER), kill_at[0], str(kill_at[1]), str(delay_ms), file]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    return proc.returncode, len(events)


def assert_exactly(folder: Path, counts: dict[str, int], texts: dict[str, int]) -> None:
    sink = open_sink_of(folder / "pipeline.yaml")
    try:
        expected = chunk_ids("crash", counts)
        assert sink.count() == len(expected)
        stored = sink.get(list(expected))
        assert set(stored) == set(expected)
        for rid, (source, i) in expected.items():
            assert stored[rid].text.startswith(f"{source} version {texts[source]} paragraph {i}:")
    finally:
        sink.close()


def versions_written(*versions: dict) -> dict[str, int]:
    """Which version's text each source holds after writing these versions in order."""
    out: dict[str, int] = {}
    previous: dict = {}
    for number, version in enumerate(versions, 1):
        for name, n in version.items():
            if n is None:
                out.pop(name, None)
            elif previous.get(name) != n:
                out[name] = number
        previous = version
    return out


def assert_store_settled(folder: Path, counts: dict[str, int]) -> None:
    """The run store agrees with the sink: every source committed with its current hash and chunk count,
    no row for a vanished one, so the next run would have nothing to do."""
    from pipelines.sources import FileSource
    from pipelines.spec import load_pipeline
    from pipelines.store import open_store

    p = load_pipeline(folder / "pipeline.yaml", strict_env=True)
    store = open_store(folder / ".sie" / "runs.sqlite")
    try:
        states = store.sources("crash", p.sinks[0].key)
    finally:
        store.close()
    hashes = {d.id: d.hash for d in FileSource(p.source).documents()}
    assert set(states) == set(counts)
    for source, state in states.items():
        assert (state.hash, state.fingerprint, state.high_water) == (hashes[source], p.fingerprint(), counts[source])


# Every run writes 3 batches, so these events happen at least 3 times; `vanished` once in edit runs.
WRITE_EVENTS = ["begin", "upserted", "deleted", "committed"]


@settings(max_examples=8, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(backend=st.sampled_from(sorted(SINKS)), phase=st.sampled_from(["first", "edit", "edit_twice"]),
       event=st.sampled_from([*WRITE_EVENTS, "read"]), n=st.integers(min_value=1, max_value=3),
       delay_ms=st.sampled_from([0, 0, 1, 5, 30]))
# The windows that matter most: a second version written but not committed, then a third on top.
@example(backend="lancedb", phase="edit_twice", event="upserted", n=1, delay_ms=0)
@example(backend="chroma", phase="edit_twice", event="deleted", n=1, delay_ms=0)
@example(backend="chroma", phase="edit", event="begin", n=2, delay_ms=1)
@example(backend="lancedb", phase="edit", event="vanished", n=1, delay_ms=0)
def test_kill_9_then_rerun_leaves_exactly_a_clean_runs_records(backend, phase, event, n, delay_ms, engine_server,
                                                              cli_env):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_pipeline(folder, PIPELINE.format(url=engine_server.url, sink=SINKS[backend]))
        docs = folder / "docs"
        history = [V1]
        counts = write_version(docs, V1, 1)
        if phase in ("edit", "edit_twice"):
            assert sie_run(folder, cli_env)[0] == 0
            counts = write_version(docs, V2, 2, V1)
            history.append(V2)
        rc, _ = sie_run(folder, cli_env, kill_at=(event, n), delay_ms=delay_ms)
        reachable = event != "vanished" or phase != "first"
        assert rc == (-signal.SIGKILL if reachable else 0), rc     # the kill point lies inside the run
        if phase == "edit_twice":   # a third version lands on top of the interrupted second one
            counts = write_version(docs, V3, 3, V2)
            history.append(V3)
        assert sie_run(folder, cli_env)[0] == 0
        assert_exactly(folder, counts, versions_written(*history))
        assert_store_settled(folder, counts)
