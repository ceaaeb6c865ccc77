"""File and record sources: every format, ids, metadata; nothing read outside the root (patterns, symlinked
files and folders); size limits; shards that split any corpus deterministically; posted record checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import ingest, write_corpus, write_pipeline

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
    assert src.unsupported == 1 and src.complete
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
    assert src.errors == ["r.jsonl:2: text_field 'text' is missing, expected text",
                          "r.jsonl: line 3: not JSON: Expecting value"]
    assert not src.complete


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
    assert sorted(src.errors) == ["alias.md: refused: a symlink (sources never follow links)",
                                  "leak.txt: refused: a symlink (sources never follow links)",
                                  "linked-dir: refused: a symlink (sources never follow links)"]
    with pytest.raises(SourceError, match="is not a folder"):
        source(tmp_path / "nope").paths()


def test_files_over_the_size_limit_are_refused(tmp_path):
    root = write_corpus(tmp_path / "docs", {"small.txt": "x" * 10, "big.txt": "x" * 2000})
    src = source(root, max_file_bytes=1000)
    assert [d.id for d in src.documents()] == ["small.txt"]
    assert src.errors == ["big.txt: 2000 bytes exceeds source.max_file_bytes (1000)"]


def test_an_unreadable_file_stops_sync_deletions(tmp_path, engine):
    """A source that could not be read this time must not look deleted."""
    write_corpus(tmp_path / "docs", {"a.md": "alpha", "b.md": "beta"})
    path = write_pipeline(tmp_path, """\
        name: guard
        source: {type: files, root: ./docs, sync_deletions: true, max_file_bytes: 100}
        steps:
          - encode: {model: tiny/embed}
        sinks:
          - {type: lancedb, uri: ./lance, collection: guard}
    """)
    assert ingest(path, engine).state == "succeeded"
    write_corpus(tmp_path / "docs", {"b.md": "beta " * 100})          # now too big to read
    report = ingest(path, engine)
    assert report.state == "partial"
    assert any("sync_deletions: skipped because some files could not be read" in e for e in report.errors)
    (counts,) = report.counters["sinks"].values()
    assert counts["deleted"] == 0


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
