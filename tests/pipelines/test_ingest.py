"""Ingest runs against real databases: the same YAML into LanceDB, Chroma (embedded and a real server)
and Qdrant (local engine) with only the sink block changed; fan-out to two sinks in one run; reruns
that write nothing; edits that write new chunks and delete stale ones; vanished sources; posted records."""

from __future__ import annotations

import textwrap
import uuid

import pytest
from pipeline_helpers import chunk_ids, ingest, open_sink_of, paragraphs, write_corpus, write_pipeline

#: The registered steps this module tests ("": every test here runs it), for test_spec.py's registry rule.
STEPS_TESTED = {("ingest", "encode"): ""}
PIPELINE = """\
    name: docs
    source: {{type: files, root: ./docs, glob: "**/*.md", sync_deletions: true}}
    steps:
      - chunk: {{by: paragraphs, size: 1}}
      - encode: {{model: tiny/embed}}
    sinks:
      - {sink}
    batch: {{size: 8}}
"""
SINKS = {
    "lancedb": "{type: lancedb, uri: ./lance, collection: docs}",
    "chroma": "{type: chroma, path: ./chroma, collection: docs}",
    "chroma_server": "{type: chroma, url: URL, collection: COLLECTION}",
    "qdrant": "{type: qdrant, path: ./qdrant, collection: docs}",
}
V1 = {"a.md": 3, "b.md": 2, "sub/c.md": 4, "d.md": 1}


def setup(tmp_path, request, backend: str, counts: dict[str, int], version: int = 1):
    sink = SINKS[backend]
    if backend == "chroma_server":
        sink = sink.replace("URL", request.getfixturevalue("chroma_server")).replace(
            "COLLECTION", "p" + uuid.uuid4().hex[:10])
    write_corpus(tmp_path / "docs", {name: paragraphs(name, version, n) for name, n in counts.items()})
    return write_pipeline(tmp_path, PIPELINE.format(sink=sink))


def assert_exactly(path, counts: dict[str, int], version_of: dict[str, int]) -> None:
    """The sink holds exactly these sources' chunks, each with the text of its current version."""
    sink = open_sink_of(path)
    try:
        expected = chunk_ids("docs", counts)
        assert sink.count() == len(expected)
        stored = sink.get(list(expected))
        assert set(stored) == set(expected)
        for rid, (source, i) in expected.items():
            assert stored[rid].text.startswith(f"{source} version {version_of[source]} paragraph {i}:")
            meta = stored[rid].metadata
            assert meta["source"] == source and meta["path"] == source and meta["chunk"]["index"] == i
            assert meta["_sie_model"] == "tiny/embed" and meta["_sie_version"] == "1"
    finally:
        sink.close()


@pytest.mark.parametrize("backend", list(SINKS))
def test_same_yaml_into_each_database_then_rerun_edit_and_delete(tmp_path, request, engine, backend):
    path = setup(tmp_path, request, backend, V1)
    report = ingest(path, engine)
    assert report.state == "succeeded", report.errors
    (sink_counts,) = report.counters["sinks"].values()
    assert report.counters["stages"]["read"] == 4 and report.counters["stages"]["chunked"] == 10
    assert sink_counts["written"] == 10 and sink_counts["committed"] == 4
    assert_exactly(path, V1, dict.fromkeys(V1, 1))

    again = ingest(path, engine)                                 # nothing changed: nothing written
    (sink_counts,) = again.counters["sinks"].values()
    assert again.counters["stages"]["skipped"] == 4 and sink_counts["written"] == 0
    assert again.counters["stages"]["chunked"] == 0

    # a.md shrinks 3 -> 1, b.md grows 2 -> 5, d.md disappears, e.md appears; c.md is untouched
    write_corpus(tmp_path / "docs", {"a.md": paragraphs("a.md", 2, 1), "b.md": paragraphs("b.md", 2, 5),
                                     "d.md": None, "e.md": paragraphs("e.md", 2, 2)})
    edited = ingest(path, engine)
    assert edited.state == "succeeded", edited.errors
    (sink_counts,) = edited.counters["sinks"].values()
    assert edited.counters["stages"]["read"] == 3 and edited.counters["stages"]["skipped"] == 1
    assert sink_counts["written"] == 1 + 5 + 2
    assert sink_counts["deleted"] == 2 + 1                       # a.md's stale chunks 1-2, then d.md's one
    v2 = {"a.md": 1, "b.md": 5, "sub/c.md": 4, "e.md": 2}
    assert_exactly(path, v2, {"a.md": 2, "b.md": 2, "sub/c.md": 1, "e.md": 2})


def test_fan_out_writes_both_sinks_in_one_run_and_backfills_a_new_sink(tmp_path, engine):
    write_corpus(tmp_path / "docs", {n: paragraphs(n, 1, c) for n, c in V1.items()})
    one = textwrap.dedent(PIPELINE.format(sink=SINKS["lancedb"]))
    path = write_pipeline(tmp_path, one)
    assert ingest(path, engine).state == "succeeded"
    # A second sink is added: only it needs the sources; the first one skips them all.
    path = write_pipeline(tmp_path, one.replace(f"- {SINKS['lancedb']}",
                                                f"- {SINKS['lancedb']}\n  - {SINKS['qdrant']}"))
    report = ingest(path, engine)
    lance, qdrant = report.counters["sinks"].values()
    assert (lance["written"], lance["skipped"]) == (0, 4)
    assert (qdrant["written"], qdrant["skipped"]) == (10, 0)
    assert report.counters["stages"]["read"] == 4          # read and encoded once, for the sink that needs it
    for index in (0, 1):
        sink = open_sink_of(path, index)
        assert sink.count() == 10
        sink.close()


def test_changing_the_steps_reprocesses_every_source(tmp_path, engine):
    write_corpus(tmp_path / "docs", {n: paragraphs(n, 1, c) for n, c in V1.items()})
    path = write_pipeline(tmp_path, PIPELINE.format(sink=SINKS["lancedb"]))
    ingest(path, engine)
    # Two paragraphs per chunk now: every source is redone and the now-stale chunk ids are deleted.
    path.write_text(path.read_text().replace("size: 1}", "size: 2}"))
    report = ingest(path, engine)
    (counts,) = report.counters["sinks"].values()
    assert report.counters["stages"]["read"] == 4 and counts["written"] == 2 + 1 + 2 + 1
    assert counts["deleted"] == 10 - 6
    sink = open_sink_of(path)
    assert sink.count() == 6
    sink.close()


def test_posted_records_are_documents_with_their_own_ids(tmp_path, engine):
    from pipelines.sources import posted_documents
    from pipelines.spec import load_pipeline

    path = write_pipeline(tmp_path, """\
        name: notes
        source: {type: records, max_records: 10}
        steps:
          - encode: {model: tiny/embed}
          - filter: {drop_if: {lang: de}}
        sinks:
          - {type: lancedb, uri: ./lance, collection: notes}
    """)
    p = load_pipeline(path)
    records = [{"id": f"n{i}", "text": f"note number {i}", "metadata": {"lang": "de" if i == 2 else "en"}}
               for i in range(4)]
    report = ingest(path, engine, documents=posted_documents(p.source, records))
    assert report.state == "succeeded"
    sink = open_sink_of(path)
    ids = chunk_ids("notes", {"n0": 1, "n1": 1, "n3": 1})
    assert sink.count() == 3 and set(sink.get(list(ids))) == set(ids)
    hits = sink.search(engine.encode_sync("tiny/embed", ["note number 3"])[0].dense, limit=1)
    assert hits[0].text == "note number 3" and hits[0].metadata["lang"] == "en"
    sink.close()


def test_hybrid_dense_and_sparse_into_qdrant(tmp_path, engine):
    """A model making dense + sparse vectors: both named vectors land in Qdrant and a fused query works."""
    write_corpus(tmp_path / "docs", {"x.md": "qdrant stores named vectors\n\nsparse and dense together"})
    path = write_pipeline(tmp_path, """\
        name: hybrid
        source: {type: files, root: ./docs}
        steps:
          - chunk: {by: paragraphs, size: 1}
          - encode: {model: tiny/splade, outputs: {dense: dense, sparse: lexical}}
        sinks:
          - {type: qdrant, path: ./qdrant, collection: hybrid}
    """)
    report = ingest(path, engine)
    assert report.state == "succeeded", report.errors
    sink = open_sink_of(path)
    assert set(sink.schema.vectors) == {"dense", "lexical"} and sink.schema.vectors["lexical"].kind == "sparse"
    (q,) = engine.encode_sync("tiny/splade", ["sparse and dense together"], output_types=["dense", "sparse"])
    from connectors import SparseVector

    hits = sink.search({"dense": q.dense, "lexical": SparseVector(q.sparse.indices, q.sparse.values)}, limit=2)
    assert hits[0].text == "sparse and dense together"
    sink.close()
    # The same as a query pipeline: one encode call makes both query vectors, the search fuses them.
    import asyncio

    from pipelines.query import QueryRunner
    from pipelines.spec import load_pipeline

    query = write_pipeline(tmp_path, """\
        name: hybrid-search
        kind: query
        steps:
          - encode: {model: tiny/splade, outputs: {dense: dense, sparse: lexical}}
          - search: {sink: {type: qdrant, path: ./qdrant, collection: hybrid}, vector: [dense, lexical], limit: 2}
    """, "query.yaml")
    runner = QueryRunner(load_pipeline(query), engine)
    try:
        answer = asyncio.run(runner.query("sparse and dense together"))
    finally:
        runner.close()
    assert [r["text"] for r in answer["results"]] == [h.text for h in hits]
    assert [r["score"] for r in answer["results"]] == pytest.approx([h.score for h in hits])
