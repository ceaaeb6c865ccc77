"""When a blue/green reindex switches, on real sinks: a refused file the old collection never held does not
hold the switch back, one it holds does (the note names it and why) until it reads again; `--shard i/N` runs
switch once, when the last of the N shards completes cleanly (a rerun of a shard changes nothing, another N
or a failed shard never switches); a posted-records pipeline switches after a run with `full: true`, which
also deletes the records it did not post; a Qdrant or Weaviate server, when QDRANT_URL / WEAVIATE_URL
names one, switches its alias. (test_reindex.py: the switch itself, readers, kill -9.)"""

from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pytest
from pipeline_helpers import ingest, open_sink_of, paragraphs, write_corpus, write_pipeline
from test_reindex import DOCS, NEW, OLD, PIPELINE, SINKS, assert_index, notes, setup, use_model

from connectors import open_sink
from pipelines.models import directory_for
from pipelines.plan import reindex_outlook
from pipelines.sources import Document, Shard
from pipelines.spec import load_pipeline
from pipelines.store import open_store

BACKENDS = list(SINKS)


def switched(report) -> bool:
    return any(" switched " in n for n in notes(report))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_refused_file_the_old_collection_never_held_does_not_block_the_switch(tmp_path, engine, backend):
    path = setup(tmp_path, backend)
    assert ingest(path, engine).state == "succeeded"
    (tmp_path / "docs" / "e.md").symlink_to(tmp_path / "docs" / "a.md")     # refused, and never indexed
    use_model(path, NEW)
    report = ingest(path, engine)
    assert report.counters["refusals"] == [{"path": "e.md", "reason": "a symlink (sources never follow links)"}]
    assert report.state == "succeeded" and switched(report), notes(report)
    assert_index(path, NEW)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_refused_file_the_old_collection_holds_blocks_the_switch_until_it_reads(tmp_path, engine, backend):
    path = setup(tmp_path, backend)
    assert ingest(path, engine).state == "succeeded"
    first = assert_index(path, OLD)
    (tmp_path / "docs" / "b.md").write_bytes(b"caf\xe9 au lait")          # held by the old collection
    use_model(path, NEW)
    report = ingest(path, engine)
    assert not switched(report), notes(report)
    [waiting] = [n for n in notes(report) if "is not complete" in n]
    assert "1 source(s) that the old collection holds were refused this time" in waiting
    assert "switching would drop their records from the live index: b.md (not utf-8 text" in waiting
    assert f"queries keep reading {first}" in waiting
    assert assert_index(path, OLD) == first                       # readers keep the complete old index (b.md too)

    again = ingest(path, engine)                                  # still refused: still waiting, nothing redone
    assert not switched(again) and sum(c["written"] for c in again.counters["sinks"].values()) == 0

    write_corpus(tmp_path / "docs", {"b.md": paragraphs("b.md", 1, DOCS["b.md"])})
    fixed = ingest(path, engine)
    assert fixed.state == "succeeded" and switched(fixed), notes(fixed)
    (counts,) = fixed.counters["sinks"].values()
    assert counts["written"] == DOCS["b.md"]                      # only b.md was left to write
    assert assert_index(path, NEW) != first


SHARDED = """\
    name: handbook
    source: {{type: files, root: ./docs}}
    steps:
      - encode: {{model: {model}}}
    sinks:
      - {sink}
    retry: {{attempts: 1}}
"""
SHARD_DOCS = [f"{name}.md" for name in "abcdefgh"]


def sharded_setup(tmp_path, engine, backend):
    """Eight one-chunk documents, both shards owning some, indexed with the old model by an unsharded run."""
    write_corpus(tmp_path / "docs", {n: f"document {n}, the whole of it" for n in SHARD_DOCS})
    owners = {i: [n for n in SHARD_DOCS if Shard(i, 2).owns(n)] for i in range(2)}
    assert owners[0] and owners[1]
    path = write_pipeline(tmp_path, SHARDED.format(model=OLD, sink=SINKS[backend]))
    assert ingest(path, engine).state == "succeeded"
    return path, owners


def shard(path, engine, index, count):
    return ingest(path, engine, shard=Shard(index, count))


@pytest.mark.parametrize("backend", BACKENDS)
def test_shards_switch_once_when_the_last_one_completes(tmp_path, engine, backend):
    path, _ = sharded_setup(tmp_path, engine, backend)
    first = assert_index(path, OLD, total=8)
    use_model(path, NEW)

    zero = shard(path, engine, 0, 2)
    assert zero.state == "succeeded" and not switched(zero), notes(zero)
    assert any("shard 0/2 is complete; waiting for shard(s) 1/2" in n for n in notes(zero)), notes(zero)
    assert assert_index(path, OLD, total=8) == first              # readers: still the old collection, whole

    rerun = shard(path, engine, 0, 2)                                       # idempotent: nothing written, still waiting
    assert not switched(rerun) and sum(c["written"] for c in rerun.counters["sinks"].values()) == 0
    assert any("waiting for shard(s) 1/2" in n for n in notes(rerun))

    other = shard(path, engine, 1, 3)                                       # another N never completes this one
    assert not switched(other), notes(other)
    assert any("completions recorded under another shard count (1 of 2) do not count towards 3" in n
               for n in notes(other)), notes(other)
    assert assert_index(path, OLD, total=8) == first

    one = shard(path, engine, 1, 2)
    assert one.state == "succeeded" and switched(one), notes(one)
    new = assert_index(path, NEW, total=8)
    after = [shard(path, engine, 0, 2), shard(path, engine, 1, 2)]                    # settled: in place, nothing to do
    assert not any(switched(r) or any("reindex" in n for n in notes(r)) for r in after)
    assert assert_index(path, NEW, total=8) == new


@pytest.mark.parametrize("backend", ["lancedb"])
def test_a_failed_shard_never_switches_and_withdraws_its_completion(tmp_path, engine, backend):
    path, owners = sharded_setup(tmp_path, engine, backend)
    first = assert_index(path, OLD, total=8)
    use_model(path, NEW)
    assert not switched(shard(path, engine, 1, 2))                          # shard 1 completes first ...

    bad = owners[1][0]
    write_corpus(tmp_path / "docs", {bad: "   \n "})              # ... then a rerun of it fails on one source
    failed = shard(path, engine, 1, 2)
    assert failed.state == "partial" and failed.dead_letters == 1 and not switched(failed)
    assert any("is not complete: 1 source(s) failed and wait in the dead-letter file" in n
               for n in notes(failed)), notes(failed)

    zero = shard(path, engine, 0, 2)                                        # shard 0's completion is not enough now
    assert zero.state == "succeeded" and not switched(zero), notes(zero)
    assert any("waiting for shard(s) 1/2" in n for n in notes(zero)), notes(zero)
    assert assert_index(path, OLD, total=8) == first

    write_corpus(tmp_path / "docs", {bad: f"document {bad}, fixed"})
    fixed = shard(path, engine, 1, 2)
    assert fixed.state == "succeeded" and switched(fixed), notes(fixed)
    assert_index(path, NEW, total=8)


RECORDS = """\
    name: notes
    source: {{type: records}}
    steps:
      - encode: {{model: {model}}}
    sinks:
      - {sink}
"""


def posted(ids: str) -> list[Document]:
    return [Document(i, f"note {i}: what it says", {"team": "core"}) for i in ids]


@pytest.mark.parametrize("backend", BACKENDS)
def test_posted_records_switch_after_a_full_run_which_deletes_what_it_did_not_post(tmp_path, engine, backend):
    path = write_pipeline(tmp_path, RECORDS.format(model=OLD, sink=SINKS[backend]))
    assert ingest(path, engine, documents=posted("abcd")).state == "succeeded"
    first = assert_index(path, OLD, total=4)
    use_model(path, NEW)

    p = load_pipeline(path, strict_env=True)
    [outlook] = reindex_outlook(p, directory_for(engine)).values()
    assert outlook.endswith("after a run request with full: true that posts every record (sie cannot re-read "
                            "posted records)"), outlook

    some = ingest(path, engine, documents=posted("ab"))
    assert some.state == "succeeded" and not switched(some)
    [waiting] = [n for n in notes(some) if "waits" in n]
    assert "switches after a run request with full: true that posts every record" in waiting
    store = open_store(tmp_path / ".sie" / "runs.sqlite")
    try:                                                          # what GET /v1/runs/{id} answers
        assert waiting in store.get_run(some.run_id).counters["notes"]
    finally:
        store.close()
    assert assert_index(path, OLD, total=4) == first

    full = ingest(path, engine, documents=posted("abc"), full=True)
    assert full.state == "succeeded" and switched(full), (full.errors, notes(full))
    assert assert_index(path, NEW, total=3) != first              # d was not posted: not in the new index
    sink = open_sink_of(path)
    try:
        assert {h.metadata["source"] for h in sink.search(np.ones(384, np.float32), limit=10)} == set("abc")
    finally:
        sink.close()

    again = ingest(path, engine, documents=posted("ab"), full=True)   # in place: c is deleted
    assert again.state == "succeeded" and not again.errors
    (counts,) = again.counters["sinks"].values()
    assert counts["deleted"] == 1
    assert_index(path, NEW, total=2)


LIVE = {"qdrant": "QDRANT", "weaviate": "WEAVIATE"}


@pytest.mark.parametrize("backend", list(LIVE))
def test_a_live_server_switches_its_alias(tmp_path, engine, backend):
    env = LIVE[backend]
    if not os.environ.get(f"{env}_URL"):
        pytest.skip(f"{env}_URL is not set: no {backend} server here (none runs on these machines); the embedded "
                    "Qdrant tests above switch an alias too")
    sink = {"type": backend, "url": os.environ[f"{env}_URL"], "collection": "reindex" + uuid.uuid4().hex[:10],
            "keep_previous": 0, "drop_after_s": 0}                # lower case: Weaviate capitalizes class names
    if os.environ.get(f"{env}_API_KEY"):
        sink["api_key"] = f"${{{env}_API_KEY}}"
    if backend == "weaviate" and os.environ.get("WEAVIATE_GRPC_URL"):
        sink["grpc_url"] = os.environ["WEAVIATE_GRPC_URL"]
    write_corpus(tmp_path / "docs", {n: paragraphs(n, 1, c) for n, c in DOCS.items()})
    path = write_pipeline(tmp_path, PIPELINE.format(engine="local", model=OLD, sink=json.dumps(sink)))
    raw = load_pipeline(path, strict_env=True).sinks[0].raw
    try:
        assert ingest(path, engine).state == "succeeded"
        first = assert_index(path, OLD)
        use_model(path, NEW)
        report = ingest(path, engine)
        assert report.state == "succeeded" and switched(report), (report.errors, notes(report))
        assert any(f"dropped the retired collection {first}" in n for n in notes(report)), notes(report)
        new = assert_index(path, NEW)
        with open_sink(raw) as reader:
            assert new != first and reader.pointed() == new
    finally:
        with open_sink(raw) as cleanup:
            cleanup.drop()
