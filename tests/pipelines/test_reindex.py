"""Blue/green reindex: a changed encode model (a 64-d tiny model -> 384-d MiniLM) is written into a new
physical collection and the logical name switches only when every source is in it; readers never see a
mix of dimensions or a missing collection; a kill -9 mid-reindex resumes and switches once; text-only
changes stay in place; retired collections beyond keep_previous are dropped."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from pipeline_helpers import ingest, open_sink_of, paragraphs, write_corpus, write_pipeline
from servers import SIE

from connectors import Schema, open_sink
from connectors.base import physical_name
from pipelines.models import directory_for
from pipelines.plan import reindex_outlook
from pipelines.spec import load_pipeline
from pipelines.vectors import sink_schema

PIPELINE = """\
    name: handbook
    engine: {engine}
    source: {{type: files, root: ./docs, sync_deletions: true}}
    steps:
      - chunk: {{by: paragraphs, size: 1}}
      - encode: {{model: {model}}}
    sinks:
      - {sink}
    batch: {{size: 3, queue: 2}}
"""
SINKS = {"lancedb": "{type: lancedb, uri: ./lance, collection: handbook, drop_after_s: 0}",
         "chroma": "{type: chroma, path: ./chroma, collection: handbook, drop_after_s: 0}",
         "qdrant": "{type: qdrant, path: ./qdrant, collection: handbook, drop_after_s: 0}"}
OLD, NEW = "tiny/embed", "test/minilm-rerank"
DIMS = {OLD: 64, NEW: 384}
DOCS = {"a.md": 3, "b.md": 2, "c.md": 4, "d.md": 1}


def setup(tmp_path: Path, backend: str, engine: str = "local") -> Path:
    write_corpus(tmp_path / "docs", {n: paragraphs(n, 1, c) for n, c in DOCS.items()})
    return write_pipeline(tmp_path, PIPELINE.format(engine=engine, model=OLD, sink=SINKS[backend]))


def use_model(path: Path, model: str) -> None:
    text = path.read_text()
    path.write_text(text.replace(OLD if model == NEW else NEW, model))


def assert_index(path: Path, model: str, total: int = 10) -> str:
    """The logical name resolves to one complete collection of `model`; returns its physical name."""
    sink = open_sink_of(path)
    try:
        assert sink.schema.vectors["dense"].dim == DIMS[model]
        assert sink.count() == total
        hits = sink.search(np.ones(DIMS[model], np.float32), limit=100)
        assert len(hits) == total and {h.metadata["_sie_model"] for h in hits} == {model}
        return sink.physical
    finally:
        sink.close()


def notes(report) -> list[str]:
    return report.counters["notes"]


@pytest.mark.parametrize("backend", list(SINKS))
def test_model_change_reindexes_into_a_new_collection_then_switches(tmp_path, engine, backend):
    path = setup(tmp_path, backend)
    assert ingest(path, engine).state == "succeeded"
    first = assert_index(path, OLD)

    use_model(path, NEW)
    p = load_pipeline(path, strict_env=True)
    new = physical_name("handbook", Schema.parse(sink_schema(p, directory_for(engine))))
    how = "alias" if backend == "qdrant" else "pointer"
    assert reindex_outlook(p, directory_for(engine)) == {
        p.sinks[0].label: f"model changed: reindex into {new}, then switch {how}"}
    report = ingest(path, engine)
    assert report.state == "succeeded", report.errors
    assert any(f"reindex into {new}" in n for n in notes(report)) and any("switched" in n for n in notes(report))
    assert assert_index(path, NEW) == new

    # A text-only change stays in place, incrementally.
    write_corpus(tmp_path / "docs", {"b.md": paragraphs("b.md", 2, 2)})
    edit = ingest(path, engine)
    (counts,) = edit.counters["sinks"].values()
    assert counts["written"] == 2 and notes(edit) == []
    assert assert_index(path, NEW) == new

    # Back to the old model. Qdrant's first collection already has the old schema's physical name: the
    # rollback reuses it and redoes only what changed since. Chroma / LanceDB started under the plain
    # name, so a third collection is written and the first one, retired beyond keep_previous 1, is dropped.
    use_model(path, OLD)
    back = ingest(path, engine)
    assert back.state == "succeeded", back.errors
    third = assert_index(path, OLD)
    (counts,) = back.counters["sinks"].values()
    if backend == "qdrant":
        assert third == first and counts["written"] == 2
    else:
        assert third not in (first, new) and counts["written"] == 10
        assert any(f"dropped the retired collection {first}" in n for n in notes(back)), notes(back)
    with open_sink(p.sinks[0].raw) as sink:
        sink.pin(new)
        assert sink.ensure().vectors["dense"].dim == 384 and sink.count() == 10   # kept for rollback
        if backend != "qdrant":
            sink.pin(first)
            with pytest.raises(Exception, match="does not exist"):
                sink.ensure()


@pytest.mark.parametrize("backend", ["lancedb", "chroma"])
def test_queries_during_a_reindex_see_one_complete_collection(tmp_path, engine, backend):
    path = setup(tmp_path, backend)
    assert ingest(path, engine).state == "succeeded"
    use_model(path, NEW)
    raw = load_pipeline(path, strict_env=True).sinks[0].raw
    seen: list[tuple[str, int, frozenset, int]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def query_loop() -> None:
        with open_sink(raw) as reader:
            reader.ensure()
            while not done.is_set() or len(seen) < 2:
                try:
                    reader.follow()
                    dim = reader.schema.vectors["dense"].dim
                    hits = reader.search(np.ones(dim, np.float32), limit=100)
                    seen.append((reader.physical, dim, frozenset(h.metadata["_sie_model"] for h in hits), len(hits)))
                except BaseException as e:  # any error is a failure of the guarantee
                    errors.append(e)
                    return

    thread = threading.Thread(target=query_loop)
    thread.start()
    try:
        report = ingest(path, engine)
    finally:
        done.set()
        thread.join(timeout=60)
    assert report.state == "succeeded" and not errors, errors
    for physical, dim, models, n in seen:
        assert n == 10 and len(models) == 1 and DIMS[next(iter(models))] == dim, (physical, dim, models, n)
    physicals = [s[0] for s in seen]
    order = [x for i, x in enumerate(physicals) if i == 0 or x != physicals[i - 1]]
    with open_sink(raw) as reader:   # after the run: the new collection
        reader.ensure()
        assert reader.schema.vectors["dense"].dim == 384
        new = reader.physical
    assert order in (["handbook", new], ["handbook"], [new]), order   # one switch, never back
    assert len(seen) >= 2


def sie_run(folder: Path, env: dict, kill_after: str | None = None) -> list[dict]:
    file = str(folder / "pipeline.yaml")
    killer = Path(__file__).with_name("kill_at.py")
    command = [SIE, "run", file, "--progress", "jsonl"] if kill_after is None else \
        [sys.executable, str(killer), kill_after, "1", "0", file]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_kill_mid_reindex_resumes_and_switches_once(tmp_path, cli_env, engine_server):
    path = setup(tmp_path, "lancedb", engine=engine_server.url)
    sie_run(tmp_path, cli_env)
    first = assert_index(path, OLD)
    use_model(path, NEW)

    killed = sie_run(tmp_path, cli_env, kill_after="committed")       # one batch of the reindex committed
    assert [e for e in killed if e["event"] == "reindex"] and not [e for e in killed if e["event"] == "switched"]
    assert assert_index(path, OLD) == first                            # readers still get the old collection

    resumed = sie_run(tmp_path, cli_env)
    [reindex] = [e for e in resumed if e["event"] == "reindex"]
    assert reindex["resumed"] >= 1                                     # what the killed run committed stays
    written = sum(e["written"] for e in resumed if e["event"] == "upserted")
    assert written < 10
    assert len([e for e in resumed if e["event"] == "switched"]) == 1
    assert assert_index(path, NEW) == reindex["new"]

    again = sie_run(tmp_path, cli_env)                                 # settled: no reindex, no switch
    assert not [e for e in again if e["event"] in ("reindex", "switched", "sink_recreated")]
    assert sum(e["written"] for e in again if e["event"] == "upserted") == 0


def test_a_query_pipeline_follows_the_switch_without_reopening(tmp_path, engine):
    """A query pipeline opened before the reindex reads the old collection, and the new one from the first
    query after the switch (the ingest adds a sparse output: a new schema, same 64-d dense query vector)."""
    import asyncio

    from pipelines.query import QueryRunner

    path = setup(tmp_path, "lancedb")
    assert ingest(path, engine).state == "succeeded"
    query = write_pipeline(tmp_path, """\
        name: ask
        kind: query
        steps:
          - encode: {model: tiny/embed}
          - search: {sink: {type: lancedb, uri: ./lance, collection: handbook}, vector: dense, limit: 20}
    """, "query.yaml")
    raw = load_pipeline(path, strict_env=True).sinks[0].raw
    vector = engine.encode_sync(OLD, ["paragraph"])[0].dense

    def direct(physical: str) -> dict[str, float]:
        """What a search of that physical collection itself answers: {id: score}."""
        with open_sink(raw) as sink:
            sink.pin(physical)
            sink.ensure()
            return {h.id: round(h.score, 4) for h in sink.search(vector, vector_name="dense", limit=20)}

    runner = QueryRunner(load_pipeline(query), engine)
    try:
        def answered() -> dict[str, float]:
            results = asyncio.run(runner.query("paragraph"))["results"]
            return {r["id"]: round(r["first_stage_score"], 4) for r in results}

        assert answered() == direct("handbook")
        path.write_text(path.read_text().replace(f"model: {OLD}}}",
                                                 "model: tiny/splade, outputs: {dense: dense, sparse: words}}"))
        report = ingest(path, engine)
        assert report.state == "succeeded" and any("switched" in n for n in notes(report)), report.errors
        new = next(e for e in notes(report) if "switched" in e).rsplit(" ", 1)[-1]
        assert direct(new) != direct("handbook")          # another model's vectors: other scores
        assert answered() == direct(new)                  # the same runner, its next query
    finally:
        runner.close()
