"""Failures, for real: a Chroma server that goes away during a run (retries, then the dead-letter file,
then a replay once it is back), one that comes back while the runner is still retrying, a document the
engine refuses (isolated from its batch), and an engine that cannot be reached (the run stops)."""

from __future__ import annotations

import json

import pytest
from pipeline_helpers import chunk_ids, ingest, open_sink_of, paragraphs, write_corpus, write_pipeline
from servers import ChromaProcess, chroma_cli

pytestmark = pytest.mark.skipif(chroma_cli() is None, reason="the chroma CLI (pip package chromadb) is missing")

PIPELINE = """\
    name: flaky
    source: {{type: files, root: ./docs}}
    steps:
      - chunk: {{by: paragraphs, size: 1}}
      - encode: {{model: tiny/embed}}
    sinks:
      - {{type: chroma, url: "{url}", collection: flaky}}
    retry: {{attempts: {attempts}, backoff_s: 0.05, max_backoff_s: 0.2}}
"""
DOCS = {"a.md": 3, "b.md": 2, "c.md": 1}


@pytest.fixture()
def chroma(tmp_path):
    server = ChromaProcess(tmp_path / "chroma-server").start()
    yield server
    server.stop()


def dead_letters(tmp_path) -> list[dict]:
    path = tmp_path / ".sie" / "dlq" / "flaky.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_sink_down_for_every_attempt_goes_to_the_dlq_and_replays(tmp_path, engine, chroma):
    write_corpus(tmp_path / "docs", {n: paragraphs(n, 1, c) for n, c in DOCS.items()})
    path = write_pipeline(tmp_path, PIPELINE.format(url=chroma.url, attempts=3))
    events: list[tuple[str, dict]] = []

    def listener(event: str, data: dict) -> None:
        events.append((event, data))
        if event == "run_started":
            chroma.stop()          # the collection exists; every write from now on is refused

    report = ingest(path, engine, listener=listener)
    assert report.state == "partial" and report.dead_letters == 3
    retries = [d for e, d in events if e == "retry"]
    assert [r["attempt"] for r in retries] == [1, 2]             # 3 attempts = 2 retries, for the one batch
    letters = dead_letters(tmp_path)
    assert sorted(e["source"] for e in letters) == sorted(DOCS)
    assert all("backend_error" in e["error"] or "ConnectError" in e["error"] or "Connect" in e["error"]
               for e in letters), letters[0]["error"]
    assert letters[0]["document"]["text"].startswith(letters[0]["source"] + " version 1")

    chroma.start()
    replay = ingest(path, engine, retry_dlq=True)
    assert replay.state == "succeeded", replay.errors
    (counts,) = replay.counters["sinks"].values()
    assert counts["written"] == 6 and counts["committed"] == 3
    assert dead_letters(tmp_path) == []
    sink = open_sink_of(path)
    expected = chunk_ids("flaky", DOCS)
    assert sink.count() == 6 and set(sink.get(list(expected))) == set(expected)
    sink.close()
    again = ingest(path, engine)                                  # the replay committed: nothing left to do
    assert again.counters["stages"]["skipped"] == 3 and again.counters["stages"]["read"] == 0


def test_sink_back_before_the_last_attempt_means_no_dead_letters(tmp_path, engine, chroma):
    write_corpus(tmp_path / "docs", {n: paragraphs(n, 1, c) for n, c in DOCS.items()})
    path = write_pipeline(tmp_path, PIPELINE.format(url=chroma.url, attempts=5))
    retries = []

    def listener(event: str, data: dict) -> None:
        if event == "run_started":
            chroma.stop()
        if event == "retry":
            retries.append(data["attempt"])
            if data["attempt"] == 2:
                chroma.start()     # back before the third attempt

    report = ingest(path, engine, listener=listener)
    assert report.state == "succeeded", report.errors
    assert retries == [1, 2] and report.dead_letters == 0 and dead_letters(tmp_path) == []
    sink = open_sink_of(path)
    assert sink.count() == 6
    sink.close()


def test_a_document_the_engine_refuses_is_isolated_from_its_batch(tmp_path, engine):
    """Without a chunk step a whitespace-only file reaches the engine, which refuses empty text (400):
    only that source is dead-lettered, its batch neighbours are written; fixing it and rerunning
    writes it and clears its dead letter."""
    write_corpus(tmp_path / "docs", {"good1.md": "first good document", "bad.md": "   \n ",
                                     "good2.md": "second good document"})
    path = write_pipeline(tmp_path, """\
        name: flaky
        source: {type: files, root: ./docs}
        steps:
          - encode: {model: tiny/embed}
        sinks:
          - {type: lancedb, uri: ./lance, collection: flaky}
        retry: {attempts: 2, backoff_s: 0.01}
    """)
    report = ingest(path, engine)
    assert report.state == "partial" and report.dead_letters == 1
    (letter,) = dead_letters(tmp_path)
    assert letter["source"] == "bad.md" and "invalid_input" in letter["error"] and "empty text" in letter["error"]
    assert any("bad.md" in e for e in report.errors)
    sink = open_sink_of(path)
    assert sink.count() == 2
    sink.close()

    write_corpus(tmp_path / "docs", {"bad.md": "fixed now"})
    fixed = ingest(path, engine)
    assert fixed.state == "succeeded" and fixed.counters["stages"]["read"] == 1
    assert dead_letters(tmp_path) == []                           # committed by a normal run: pruned
    sink = open_sink_of(path)
    assert sink.count() == 3
    sink.close()


def test_an_engine_lost_mid_run_stops_the_run_and_a_rerun_completes(tmp_path, engine_server,
                                                                   pipeline_catalog):
    from servers import Server, free_port

    from pipelines.engines import open_engine
    from pipelines.spec import load_pipeline

    write_corpus(tmp_path / "docs", {n: paragraphs(n, 1, c) for n, c in DOCS.items()})
    text = """\
        name: flaky
        engine: {{url: "{url}", max_retries: 0, timeout_s: 5}}
        source: {{type: files, root: ./docs}}
        steps:
          - chunk: {{by: paragraphs, size: 1}}
          - encode: {{model: tiny/embed}}
        sinks:
          - {{type: lancedb, uri: ./lance, collection: flaky}}
        retry: {{attempts: 2, backoff_s: 0.01}}
    """

    def run(**options):
        client, close = open_engine(load_pipeline(path).engine)
        try:
            return ingest(path, client, **options)
        finally:
            close()

    # Nobody listening at all: the run fails at once, saying so (nothing is dead-lettered).
    path = write_pipeline(tmp_path, text.format(url=f"http://127.0.0.1:{free_port()}"))
    nobody = run()
    assert nobody.state == "failed" and "engine.url: cannot list the server's models" in nobody.errors[0]

    # An engine that goes away once the run has started: the first batch exhausts its attempts and the
    # run stops (no document is at fault, so nothing is dead-lettered); a plain rerun completes it.
    doomed = Server({"SIE_CATALOG_DIRS": str(pipeline_catalog), "SIE_CPU_PRECISION": "fp32",
                     "SIE_TEST_LOG_DIR": str(tmp_path)})
    path = write_pipeline(tmp_path, text.format(url=doomed.url))
    try:
        down = run(listener=lambda event, data: doomed.stop() if event == "run_started" else None)
    finally:
        doomed.stop()
    assert down.state == "failed" and down.dead_letters == 0 and dead_letters(tmp_path) == []
    assert down.errors == [f"engine: cannot reach {doomed.url}: ConnectError: All connection attempts failed "
                           "(after 2 attempt(s)); the run stopped: rerun to resume"]
    path = write_pipeline(tmp_path, text.format(url=engine_server.url))
    rerun = run()
    assert rerun.state == "succeeded" and rerun.counters["stages"]["read"] == 3
    sink = open_sink_of(path)
    assert sink.count() == 6
    sink.close()


def test_a_sink_that_cannot_be_opened_fails_the_run_and_names_it(tmp_path, engine):
    from servers import free_port

    write_corpus(tmp_path / "docs", {"a.md": "text"})
    url = f"http://127.0.0.1:{free_port()}"
    path = write_pipeline(tmp_path, PIPELINE.format(url=url, attempts=1).replace(
        "    sinks:\n", "    sinks:\n      - {type: lancedb, uri: ./lance, collection: ok}\n"))
    report = ingest(path, engine)
    assert report.state == "failed" and len(report.errors) == 1
    assert report.errors[0].startswith(f"sinks[1] (chroma:flaky): sink.url: cannot open chroma at {url}")
    assert report.counters["stages"]["read"] == 0                 # nothing was read, nothing half-written


def test_an_engine_without_room_stops_the_run_without_dead_letters(tmp_path, engine, pipeline_catalog):
    """503 resource_exhausted is the engine's state, not a document's fault: after the retries the run stops
    (resumable) instead of isolating and dead-lettering every source; on an engine with room the rerun
    writes exactly the corpus."""
    from sie.config import Settings
    from sie.runtime.engine import Engine

    write_corpus(tmp_path / "docs", {n: paragraphs(n, 1, c) for n, c in DOCS.items()})
    path = write_pipeline(tmp_path, """\
        name: flaky
        source: {type: files, root: ./docs}
        steps:
          - chunk: {by: paragraphs, size: 1}
          - encode: {model: tiny/embed}
        sinks:
          - {type: lancedb, uri: ./lance, collection: flaky}
        retry: {attempts: 2, backoff_s: 0.01}
    """)
    cramped = Engine(Settings(device="cpu", threads=1, catalog_dirs=[str(pipeline_catalog)], cpu_precision="fp32",
                              memory_budget="1MiB"))
    try:
        events: list[tuple[str, dict]] = []
        report = ingest(path, cramped, listener=lambda event, data: events.append((event, data)))
    finally:
        cramped.close()
    assert report.state == "failed" and report.dead_letters == 0 and dead_letters(tmp_path) == []
    assert [d["attempt"] for e, d in events if e == "retry"] == [1]
    assert any(e.startswith("engine: memory: 'tiny/embed' needs") and "device budget is 1 MiB" in e
               and "the run stopped: rerun to resume" in e for e in report.errors), report.errors

    rerun = ingest(path, engine)
    assert rerun.state == "succeeded" and rerun.dead_letters == 0
    sink = open_sink_of(path)
    assert sink.count() == sum(DOCS.values())
    sink.close()
