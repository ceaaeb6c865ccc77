"""File and record sources: every format, ids, metadata; nothing read outside the root (patterns, symlinked
files and folders); what the file rules refuse is counted and listed with its reason, and never looks
deleted; shards that split any corpus deterministically; posted record checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import ingest, open_sink_of, write_corpus, write_pipeline

from pipelines.errors import SourceError
from pipelines.sources import FileSource, Shard, posted_documents
from pipelines.spec import FilesSource, RecordsSource


def source(root, **options) -> FileSource:
    return FileSource(FilesSource(root=str(root), **options))


def test_every_format_becomes_documents_with_stable_ids(tmp_path):
    root = write_corpus(tmp_path / "docs", {"a.txt": "plain text", "b.md": "# Title\n\nbody", "c/d.rst": "rst",
                                            "skip.bin": "binary?"})
    (root / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"id": "x1", "text": "first row", "lang": "en", "a.b": 1}, {"id": "x2", "text": "second row", "lang": "de"}])
        + "\n\n")
    (root / "table.csv").write_text("id,text,lang\nr1,csv row one,en\nr2,\"csv, row two\",fr\n")
    pq.write_table(pa.table({"id": [7, 8], "text": ["parquet one", "parquet two"], "score": [0.5, float("nan")]}),
                   root / "t.parquet")
    src = source(root, id_field="id")
    docs = {d.id: d for d in src.documents()}
    assert set(docs) == {"a.txt", "b.md", "c/d.rst", "rows.jsonl#x1", "rows.jsonl#x2", "table.csv#r1",
                         "table.csv#r2", "t.parquet#7", "t.parquet#8"}
    assert src.unsupported == 1 and src.refused == []
    assert docs["b.md"].text == "# Title\n\nbody" and docs["b.md"].metadata == {"path": "b.md"}
    assert docs["rows.jsonl#x1"].metadata == {"lang": "en", "a_b": 1, "path": "rows.jsonl"}  # '.' made safe
    assert docs["table.csv#r2"].text == "csv, row two" and docs["table.csv#r2"].metadata["lang"] == "fr"
    assert docs["t.parquet#8"].metadata == {"score": None, "path": "t.parquet"}             # NaN is not JSON
    # Without id_field a row is known by its line / row number; the hash follows text and metadata.
    by_number = {d.id for d in source(root, glob=["*.jsonl"]).documents()}
    assert by_number == {"rows.jsonl#1", "rows.jsonl#2"}
    again = {d.id: d.hash for d in source(root, id_field="id").documents()}
    assert again == {k: d.hash for k, d in docs.items()}


def test_metadata_fields_and_bad_rows_are_reported(tmp_path):
    root = write_corpus(tmp_path / "docs", {"r.jsonl": '{"text": "ok", "a": 1, "b": 2}\n{"no_text": 1}\nnot json\n'})
    src = source(root, metadata_fields=["a"])
    docs = list(src.documents())
    assert [(d.id, d.metadata) for d in docs] == [("r.jsonl#1", {"a": 1, "path": "r.jsonl"})]
    assert [str(r) for r in src.refused] == ["r.jsonl: row 2: text_field 'text' is missing, expected text",
                                             "r.jsonl: line 3: not JSON: Expecting value"]
    assert src.protects("r.jsonl#2") and src.protects("r.jsonl#9")   # the rows after line 3 were not read
    assert not src.protects("r.jsonl.bak") and not src.protects("other.md")


def test_nothing_is_read_outside_the_root(tmp_path):
    outside = write_corpus(tmp_path / "secret", {"key.txt": "s3cr3t"})
    root = write_corpus(tmp_path / "docs", {"ok.md": "fine"})
    os.symlink(outside / "key.txt", root / "leak.txt")
    os.symlink(outside, root / "linked-dir")
    write_corpus(root, {"inner.md": "inner"})
    os.symlink(root / "inner.md", root / "alias.md")      # even a link inside the root is refused
    src = source(root)
    docs = {d.id: d.text for d in src.documents()}
    assert docs == {"ok.md": "fine", "inner.md": "inner"}
    assert "s3cr3t" not in json.dumps(docs)
    assert sorted(map(str, src.refused)) == ["alias.md: a symlink (sources never follow links)",
                                             "leak.txt: a symlink (sources never follow links)",
                                             "linked-dir: a symlink (sources never follow links)"]
    with pytest.raises(SourceError, match="is not a folder"):
        source(tmp_path / "nope").paths()


def test_files_over_the_size_limit_are_refused(tmp_path):
    root = write_corpus(tmp_path / "docs", {"small.txt": "x" * 10, "big.txt": "x" * 2000})
    src = source(root, max_file_bytes=1000)
    assert [d.id for d in src.documents()] == ["small.txt"]
    assert [str(r) for r in src.refused] == ["big.txt: 2000 bytes exceeds source.max_file_bytes (1000)"]


def test_a_refused_file_does_not_look_deleted_while_a_vanished_one_is_deleted(tmp_path, engine):
    """sync_deletions: a source refused this time was not read, so its records stay; a file that is gone
    is deleted in the same run."""
    write_corpus(tmp_path / "docs", {"a.md": "alpha", "b.md": "beta", "c.md": "gamma",
                                     "t.jsonl": '{"text": "row one"}\n{"text": "row two"}\n'})
    path = write_pipeline(tmp_path, """\
        name: guard
        source: {type: files, root: ./docs, sync_deletions: true, max_file_bytes: 100}
        steps:
          - encode: {model: tiny/embed}
        sinks:
          - {type: lancedb, uri: ./lance, collection: guard}
    """)
    assert ingest(path, engine).state == "succeeded"
    write_corpus(tmp_path / "docs", {"b.md": "beta " * 100, "c.md": None})         # b too big now, c gone
    (tmp_path / "docs" / "t.jsonl").write_bytes(b'{"text": "row one"}\n\xff{"text": "row two"}\n')
    report = ingest(path, engine)
    assert report.state == "succeeded", report.errors
    assert report.counters["stages"]["refused"] == 2
    assert report.counters["refusals"] == [
        {"path": "b.md", "reason": "500 bytes exceeds source.max_file_bytes (100)"},
        {"path": "t.jsonl", "reason": "not utf-8 text (source.encoding); 0 rows were read before it, the rest "
                                    "was not"}]
    (counts,) = report.counters["sinks"].values()
    assert counts["deleted"] == 1                                   # c.md only
    sink = open_sink_of(path)
    try:
        assert sink.count() == 4                                    # a, b (kept), t.jsonl#1, t.jsonl#2 (kept)
    finally:
        sink.close()


def test_each_refusal_kind_is_counted_with_its_reason(tmp_path, engine):
    root = write_corpus(tmp_path / "docs", {"ok.md": "fine", "big.md": "x" * 300, "sub/deep.md": "deep",
                                            "rows.csv": "id,text\nr1,first\nr2\n,third\n"})
    (root / "latin1.md").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "link.md").symlink_to(root / "ok.md")
    (root / "linked").symlink_to(root / "sub", target_is_directory=True)
    path = write_pipeline(tmp_path, """\
        name: kinds
        source: {type: files, root: ./docs, glob: ["**/*", "linked/*.md"], id_field: id, max_file_bytes: 200}
        steps:
          - encode: {model: tiny/embed}
        sinks:
          - {type: lancedb, uri: ./lance, collection: kinds}
    """)
    seen: list[tuple[str, str]] = []
    report = ingest(path, engine, listener=lambda e, d: seen.append((d["path"], d["reason"])) if e == "refused"
                    else None)
    assert report.state == "succeeded", report.errors
    refusals = sorted((r["path"], r["reason"]) for r in report.counters["refusals"])
    assert refusals == [
        ("big.md", "300 bytes exceeds source.max_file_bytes (200)"),
        ("latin1.md", "not utf-8 text (source.encoding): byte 0xe9 at offset 3"),
        ("link.md", "a symlink (sources never follow links)"),
        ("linked", "a symlink (sources never follow links)"),
        ("linked/deep.md", "a symlink (sources never follow links)"),
        ("rows.csv", "row 2: text_field 'text' is missing, expected text"),
        ("rows.csv", "row 3: no value in id_field 'id'")]
    assert report.counters["stages"]["refused"] == 7 and sorted(seen) == refusals    # events as they happen
    assert report.counters["stages"]["listed"] == 3                                  # ok.md, sub/deep.md, r1
    (counts,) = report.counters["sinks"].values()
    assert counts["written"] == 3 and counts["failed"] == 0


def test_the_refusals_listed_are_capped_but_all_are_counted(tmp_path, engine):
    from pipelines.runner import Counters

    root = write_corpus(tmp_path / "docs", {"ok.md": "fine"})
    for i in range(Counters.MAX_REFUSALS + 5):
        (root / f"link-{i:03d}.md").symlink_to(root / "ok.md")
    path = write_pipeline(tmp_path, """\
        name: many
        source: {type: files, root: ./docs}
        steps:
          - encode: {model: tiny/embed}
        sinks:
          - {type: lancedb, uri: ./lance, collection: many}
    """)
    report = ingest(path, engine)
    assert report.counters["stages"]["refused"] == Counters.MAX_REFUSALS + 5
    assert len(report.counters["refusals"]) == Counters.MAX_REFUSALS
    from pipelines.progress import refusal_lines

    lines = refusal_lines(report.counters)
    assert lines[0] == "refused link-000.md: a symlink (sources never follow links)"
    assert lines[-1] == f"refused: 5 more (the first {Counters.MAX_REFUSALS} are listed)"


def test_a_table_file_refused_whole_is_reported_by_one_shard_and_kept_by_all(tmp_path):
    root = write_corpus(tmp_path / "docs", {"t.jsonl": '{"text": "x"}\n' * 50})
    shards = [FileSource(FilesSource(root=str(root), max_file_bytes=10), Shard(i, 4)) for i in range(4)]
    for src in shards:
        assert list(src.documents()) == []
    assert sum(len(src.refused) for src in shards) == 1
    assert all(src.protects("t.jsonl#7") for src in shards)


def test_shards_partition_sources_the_same_way_in_every_process(tmp_path):
    ids = [f"docs/{i}.md" for i in range(200)] + [f"t.csv#{i}" for i in range(200)]
    owners = {s: [i for i in range(4) if Shard(i, 4).owns(s)] for s in ids}
    assert all(len(o) == 1 for o in owners.values())                       # disjoint and complete
    sizes = [sum(o == [i] for o in owners.values()) for i in range(4)]
    assert min(sizes) > 60                                                   # and balanced
    code = "import sys; from pipelines.sources import Shard; print([Shard(1, 4).owns(s) for s in sys.argv[1:]])"
    other = subprocess.run([sys.executable, "-c", code, *ids[:50]], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "123"})
    assert other.stdout.strip() == str([owners[s] == [1] for s in ids[:50]])
    assert Shard.parse("2/8") == Shard(2, 8)
    for bad in ("8/8", "x", "-1/2", "1/0"):
        with pytest.raises(SourceError, match="shard: "):
            Shard.parse(bad)


def test_posted_records_are_checked_before_a_run_starts():
    config = RecordsSource(type="records", max_records=2, max_chars=10)
    docs = posted_documents(config, [{"id": "a", "text": "hello", "metadata": {"k": [1, 2]}}, {"id": "b", "text": ""}])
    assert [(d.id, d.text, d.metadata) for d in docs] == [("a", "hello", {"k": [1, 2]}), ("b", "", {})]
    cases = [([{"id": "a", "text": "x"}] * 3, "records: 3 records exceeds source.max_records (2)"),
             ([{"text": "x"}], "records[0].id: expected a string of 1..512 characters, got None"),
             ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], "records[1].id: 'a' appears twice"),
             ([{"id": "a", "text": 5}], "records[0].text: expected a string, got int"),
             ([{"id": "a", "text": "x" * 11}], "records[0].text: 11 characters exceeds source.max_chars (10)"),
             ([{"id": "a", "text": "x", "metadata": {"_sie_hash": "forged"}}], "records[0].metadata key '_sie_hash'"),
             ([{"id": "a", "text": "x", "extra": 1}], "records[0].extra: unknown key"),
             ("not a list", "records: expected a list, got str")]
    for records, message in cases:
        with pytest.raises(SourceError) as e:
            posted_documents(config, records)
        assert e.value.message.startswith(message), e.value.message
