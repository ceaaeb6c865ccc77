"""The run store and the sink never drift apart: whatever happens to the collection between runs (dropped,
recreated empty, records deleted, the run store lost, the sink moved to another database), the next run
ends with exactly the records of a clean run, on every local sink; `--full` reprocesses everything and
deletes what vanished."""

from __future__ import annotations

import re
import shutil

import pytest
from pipeline_helpers import ingest, open_sink_of, paragraphs, write_corpus, write_pipeline
from test_ingest import PIPELINE, SINKS, V1, assert_exactly, setup

from connectors import open_sink
from pipelines.spec import load_pipeline

EVERY = dict.fromkeys(V1, 1)


def notes(report) -> list[str]:
    return report.counters["notes"]


def committed(report) -> int:
    (counts,) = report.counters["sinks"].values()
    return counts["written"]


@pytest.mark.parametrize("backend", list(SINKS))
def test_dropped_collection_is_backfilled(tmp_path, request, engine, backend):
    path = setup(tmp_path, request, backend, V1)
    assert ingest(path, engine).state == "succeeded"
    sink = open_sink_of(path)
    sink.drop()
    sink.close()
    report = ingest(path, engine)
    assert report.state == "succeeded", report.errors
    assert any("sink was recreated: backfilling 4 sources" in n for n in notes(report)), notes(report)
    assert committed(report) == 10
    assert_exactly(path, V1, EVERY)
    again = ingest(path, engine)                       # and the store agrees again: nothing to do
    assert committed(again) == 0 and notes(again) == []


@pytest.mark.parametrize("backend", list(SINKS))
def test_collection_recreated_empty_is_backfilled(tmp_path, request, engine, backend):
    path = setup(tmp_path, request, backend, V1)
    assert ingest(path, engine).state == "succeeded"
    sink = open_sink_of(path)
    schema = sink.schema
    sink.drop()
    sink.ensure(schema)                                # same name, same schema, no records: another generation
    sink.close()
    report = ingest(path, engine)
    assert any("backfilling 4 sources" in n and "generation" in n for n in notes(report)), notes(report)
    assert_exactly(path, V1, EVERY)


@pytest.mark.parametrize("backend", list(SINKS))
def test_records_deleted_behind_the_store_are_backfilled(tmp_path, request, engine, backend):
    path = setup(tmp_path, request, backend, V1)
    assert ingest(path, engine).state == "succeeded"
    sink = open_sink_of(path)
    sink.delete(where={"source": "b.md"})
    assert sink.count() == 8
    sink.close()
    report = ingest(path, engine)
    assert any("holds 8 records, fewer than the 10 committed" in n for n in notes(report)), notes(report)
    assert_exactly(path, V1, EVERY)


@pytest.mark.parametrize("backend", list(SINKS))
def test_lost_run_store_rewrites_without_duplicates(tmp_path, request, engine, backend):
    path = setup(tmp_path, request, backend, V1)
    assert ingest(path, engine).state == "succeeded"
    shutil.rmtree(tmp_path / ".sie")
    report = ingest(path, engine)
    assert report.state == "succeeded" and committed(report) == 10
    assert_exactly(path, V1, EVERY)


@pytest.mark.parametrize("backend", ["lancedb", "chroma", "qdrant"])
def test_same_pipeline_pointed_at_a_second_database(tmp_path, engine, backend, monkeypatch):
    write_corpus(tmp_path / "docs", {name: paragraphs(name, 1, n) for name, n in V1.items()})
    sink = re.sub(r"(uri|path): \./\w+", r"\1: '${DB}'", SINKS[backend])
    assert "${DB}" in sink
    path = write_pipeline(tmp_path, PIPELINE.format(sink=sink))
    monkeypatch.setenv("DB", str(tmp_path / "first"))
    assert ingest(path, engine).state == "succeeded"
    monkeypatch.setenv("DB", str(tmp_path / "second"))  # the sink key (the YAML) is the same, the database is not
    report = ingest(path, engine)
    assert any("sink was recreated: backfilling 4 sources" in n for n in notes(report)), notes(report)
    assert_exactly(path, V1, EVERY)
    monkeypatch.setenv("DB", str(tmp_path / "first"))  # back: its generation is not the one committed last
    report = ingest(path, engine)
    assert any("generation" in n for n in notes(report)), notes(report)
    assert_exactly(path, V1, EVERY)


@pytest.mark.parametrize("backend", ["lancedb", "chroma"])
def test_full_reprocesses_every_source_and_deletes_vanished_ones(tmp_path, request, engine, backend):
    path = setup(tmp_path, request, backend, V1)
    path.write_text(path.read_text().replace("sync_deletions: true", "sync_deletions: false"))
    assert ingest(path, engine).state == "succeeded"
    write_corpus(tmp_path / "docs", {"d.md": None})
    assert committed(ingest(path, engine)) == 0        # without --full the vanished d.md stays
    report = ingest(path, engine, full=True)
    (counts,) = report.counters["sinks"].values()
    assert report.counters["stages"]["read"] == 3 and counts["written"] == 9 and counts["deleted"] == 1
    rest = {k: v for k, v in V1.items() if k != "d.md"}
    assert_exactly(path, rest, dict.fromkeys(rest, 1))


def test_generation_marker_is_not_a_record(tmp_path, engine):
    """The marker lives in collection metadata: searches and counts never see it."""
    path = setup(tmp_path, None, "lancedb", V1)
    ingest(path, engine)
    p = load_pipeline(path, strict_env=True)
    with open_sink(p.sinks[0].raw) as sink:
        sink.ensure()
        first = sink.generation()
        assert sink.generation() == first and sink.count() == 10
        hits = sink.search([1.0] * 64, limit=100)
        assert len(hits) == 10 and all(h.metadata.get("source") in V1 for h in hits)
