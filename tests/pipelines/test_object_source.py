"""S3 buckets as sources, against a real S3 API server on loopback (moto's server mode, its own process,
started by a fixture) with boto-style credentials in the environment. What a run downloads is read from the
server's own request log (moto's recorder), not inferred from our counters: an unchanged rerun downloads
nothing, a replaced object is downloaded and re-indexed, a deleted one is deleted with `sync_deletions`, a
403 on one object (a bucket policy that denies GetObject on its key, which moto enforces) refuses that object
and the run goes on, and an object over `max_file_bytes` is refused without being downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import lancedb
import pytest
from pipeline_helpers import ingest, open_sink_of, write_pipeline
from servers import free_port
from test_documents import pdf_bytes

from pipelines.errors import SourceError, SpecError
from pipelines.objects import ObjectSource
from pipelines.plan import source_outlook
from pipelines.sources import Shard
from pipelines.spec import ObjectStoreSource, load_pipeline
from pipelines.store import open_store

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "sie-test-key", "AWS_SECRET_ACCESS_KEY": "sie-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


class MotoServer:
    """`python -m moto.server` on a free loopback port, with its request recorder writing to a file we read."""

    def __init__(self, folder: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.recording = folder / "requests.jsonl"
        env = {**os.environ, **CREDENTIALS, "MOTO_RECORDER_FILEPATH": str(self.recording), **env}
        self.log = open(folder / "moto.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start: {(folder / 'moto.log').read_text()}") from None
                time.sleep(0.2)
        self.api("start-recording")

    def api(self, action: str) -> bytes:
        method = "GET" if action == "download-recording" else "POST"
        with urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/recorder/{action}",
                                                           method=method), timeout=10) as r:
            return r.read()

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request the server got since the last `forget()`."""
        out = []
        for line in self.api("download-recording").splitlines():
            entry = json.loads(line)
            out.append((entry["method"], entry["url"].split(str(self.port), 1)[1]))
        return out

    def downloads(self) -> list[str]:
        """The object keys fetched with GET (a listing is a GET on the bucket with ?list-type); /bucket/key."""
        return sorted(path.split("/", 2)[2] for method, path in self.requests()
                      if method == "GET" and "?" not in path and path.count("/") >= 2)

    def forget(self) -> None:
        self.api("reset-recording")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture()
def s3(moto, monkeypatch, request):
    """A fresh bucket (named after the test) and a boto3 client; the credentials are in the environment."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    bucket = request.node.name.replace("_", "-")[:50].strip("-")
    client.create_bucket(Bucket=bucket)
    moto.forget()
    return client, bucket


def put(client, bucket: str, objects: dict[str, bytes | str | None]) -> None:
    for key, body in objects.items():
        if body is None:
            client.delete_object(Bucket=bucket, Key=key)
        else:
            client.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def pipeline(folder: Path, moto, bucket: str, extra: str = "") -> Path:
    return write_pipeline(folder, f"""\
        name: bucket
        source: {{type: s3, bucket: {bucket}, endpoint_url: "{moto.url}", sync_deletions: true{extra}}}
        steps:
          - encode: {{model: tiny/embed}}
        sinks:
          - {{type: lancedb, uri: ./lance, collection: bucket}}
    """)


def records(folder: Path) -> dict[str, dict]:
    """source -> (text, metadata) of every record, one record per source (no chunk step)."""
    rows = lancedb.connect(str(folder / "lance")).open_table("bucket").to_arrow().to_pylist()
    out = {}
    for r in rows:
        meta = json.loads(r["metadata"])
        out[meta["source"]] = {"text": r["text"], **meta}
    assert len(out) == len(rows)
    return out


def stages(report) -> dict[str, int]:
    return {k: v for k, v in report.counters["stages"].items() if v}


def test_objects_are_read_like_files_and_an_unchanged_rerun_downloads_nothing(tmp_path, engine, s3, moto):
    client, bucket = s3
    put(client, bucket, {"a.txt": "alpha text", "notes/b.md": "# Bee\n\nbeta", "handbook.pdf":
                         pdf_bytes(["Vacation is 25 days.", "Sick leave needs a note."]),
                         "rows.jsonl": '{"text": "row one"}\n{"text": "row two"}\n', "image.bin": b"\x00\x01"})
    path = pipeline(tmp_path, moto, bucket)
    moto.forget()
    report = ingest(path, engine)
    assert report.state == "succeeded", report.errors
    assert stages(report) == {"listed": 5, "read": 5, "chunked": 5, "processed": 5}
    assert moto.downloads() == ["a.txt", "handbook.pdf", "notes/b.md", "rows.jsonl"]   # not image.bin
    got = records(tmp_path)
    assert sorted(got) == ["a.txt", "handbook.pdf", "notes/b.md", "rows.jsonl#1", "rows.jsonl#2"]
    assert got["handbook.pdf"]["text"] == "Vacation is 25 days.\fSick leave needs a note."
    assert (got["handbook.pdf"]["pages"], got["handbook.pdf"]["title"]) == (2, "The Handbook")
    assert got["notes/b.md"]["uri"] == f"s3://{bucket}/notes/b.md" and got["notes/b.md"]["path"] == "notes/b.md"
    assert got["rows.jsonl#2"]["text"] == "row two"

    moto.forget()
    again = ingest(path, engine)
    assert again.state == "succeeded", again.errors
    assert stages(again) == {"listed": 5, "skipped": 5}
    assert moto.downloads() == []                                  # the listing only
    assert [m for m, p in moto.requests()] == ["GET"]
    assert len(records(tmp_path)) == 5


def test_a_replaced_object_is_reindexed_and_a_deleted_one_is_deleted(tmp_path, engine, s3, moto):
    client, bucket = s3
    put(client, bucket, {"a.txt": "alpha one", "b.txt": "beta", "c.txt": "gamma",
                         "t.csv": "text,id\nfirst row,1\nsecond row,2\n"})
    path = pipeline(tmp_path, moto, bucket)
    assert ingest(path, engine).state == "succeeded"
    put(client, bucket, {"a.txt": "alpha two, replaced", "b.txt": None, "t.csv": "text,id\nfirst row,1\n"})
    moto.forget()
    report = ingest(path, engine)
    assert report.state == "succeeded", report.errors
    assert moto.downloads() == ["a.txt", "t.csv"]   # c.txt unchanged: not downloaded
    # a.txt re-read and rewritten; t.csv re-read, its row 1 unchanged (skipped), row 2 and b.txt vanished.
    assert stages(report) == {"listed": 3, "read": 1, "skipped": 2, "chunked": 1, "processed": 1}
    (sink,) = report.counters["sinks"].values()
    assert (sink["written"], sink["deleted"]) == (1, 2)
    got = records(tmp_path)
    assert sorted(got) == ["a.txt", "c.txt", "t.csv#1"]
    assert got["a.txt"]["text"] == "alpha two, replaced"
    moto.forget()
    assert stages(ingest(path, engine)) == {"listed": 3, "skipped": 3} and moto.downloads() == []
    store = open_store(tmp_path / ".sie" / "runs.sqlite")
    try:   # `sie plan` says the same from the listing alone
        outlook = source_outlook(load_pipeline(path, strict_env=True), store, Shard())
    finally:
        store.close()
    assert (outlook["files"], list(outlook["per_sink"].values())) == (3, [{"download": 0, "skip": 3}])
    assert moto.downloads() == []


def test_a_forbidden_object_is_refused_kept_from_deletion_and_the_run_goes_on(tmp_path, engine, s3, moto):
    client, bucket = s3
    put(client, bucket, {"open.txt": "anyone may read this", "secret.txt": "first version"})
    path = pipeline(tmp_path, moto, bucket)
    assert ingest(path, engine).state == "succeeded"
    # The object changes and reading it is then denied to everyone: a 403 on GET (moto enforces policies whose
    # principal is "*"); listing the bucket is still allowed.
    put(client, bucket, {"secret.txt": "second version", "new.txt": "a new object"})
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/secret.txt"}
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [deny]}))
    report = ingest(path, engine)
    assert report.state == "succeeded", report.errors
    (refusal,) = report.counters["refusals"]
    assert refusal["path"] == "secret.txt"
    assert refusal["reason"].startswith("cannot be read: access denied by the store (403)")
    (sink,) = report.counters["sinks"].values()
    assert (sink["written"], sink["deleted"]) == (1, 0)            # new.txt; secret.txt refused, not vanished
    got = records(tmp_path)
    assert sorted(got) == ["new.txt", "open.txt", "secret.txt"] and got["secret.txt"]["text"] == "first version"
    # Refused objects get no mark: the next run asks again, and says why again.
    moto.forget()
    assert ingest(path, engine).counters["stages"]["refused"] == 1 and moto.downloads() == ["secret.txt"]
    client.delete_bucket_policy(Bucket=bucket)
    assert ingest(path, engine).state == "succeeded" and records(tmp_path)["secret.txt"]["text"] == "second version"


def test_prefix_and_glob_select_keys_as_a_root_and_patterns_select_files(s3, moto):
    client, bucket = s3
    put(client, bucket, {"handbook/a.md": "a", "handbook/x/b.md": "b", "handbook/c.txt": "c",
                         "handbook/x/.hidden.md": "h", "handbookish/d.md": "d", "other/e.md": "e"})
    source = ObjectSource(ObjectStoreSource(type="s3", bucket=bucket, prefix="handbook/", glob=["**/*.md"],
                                            endpoint_url=moto.url))
    assert [e.key for e in source.entries()] == ["a.md", "x/.hidden.md", "x/b.md"]
    top = ObjectSource(ObjectStoreSource(type="s3", bucket=bucket, prefix="handbook", glob=["*.md", "*.txt"],
                                         endpoint_url=moto.url))
    read = list(top.documents())   # each object's documents, then its mark (key, version, documents)
    assert [(type(x).__name__, getattr(x, "id", None) or x.key) for x in read] == [
        ("Document", "a.md"), ("ObjectMark", "a.md"), ("Document", "c.txt"), ("ObjectMark", "c.txt")]
    assert read[1].documents == 1 and read[1].version.endswith("|1")   # ETag|version|size


def test_an_object_over_max_file_bytes_is_refused_without_being_downloaded(tmp_path, engine, s3, moto):
    client, bucket = s3
    put(client, bucket, {"small.txt": "fits", "big.txt": "x" * 500})
    path = pipeline(tmp_path, moto, bucket, ", max_file_bytes: 100")
    moto.forget()
    report = ingest(path, engine)
    assert report.state == "succeeded", report.errors
    assert report.counters["refusals"] == [{"path": "big.txt",
                                            "reason": "500 bytes exceeds source.max_file_bytes (100)"}]
    assert moto.downloads() == ["small.txt"]
    assert sorted(records(tmp_path)) == ["small.txt"]


def test_a_missing_bucket_or_an_unreachable_endpoint_names_the_field(tmp_path, engine, s3, moto):
    missing = ObjectSource(ObjectStoreSource(type="s3", bucket="no-such-bucket", endpoint_url=moto.url))
    with pytest.raises(SourceError) as e:
        missing.entries()
    assert e.value.field == "source.bucket"
    assert e.value.message == f"source.bucket: 'no-such-bucket' does not exist at {moto.url}"
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    report = ingest(pipeline(tmp_path, type("M", (), {"url": closed}), "docs"), engine)
    assert report.state == "failed" and time.monotonic() - started < 30
    (error,) = report.errors
    assert error.startswith(f"source.endpoint_url: cannot reach {closed}: ")


def test_credentials_the_store_refuses_for_listing_name_the_bucket_and_where_credentials_come_from(
        tmp_path_factory, monkeypatch):
    """moto with IAM authentication on (INITIAL_NO_AUTH_ACTION_COUNT=0) checks every request's signature: keys
    no IAM user holds are refused (403 InvalidAccessKeyId)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    strict = MotoServer(tmp_path_factory.mktemp("moto-iam"), INITIAL_NO_AUTH_ACTION_COUNT="0")
    try:
        with pytest.raises(SourceError) as e:
            ObjectSource(ObjectStoreSource(type="s3", bucket="docs", endpoint_url=strict.url)).entries()
    finally:
        strict.stop()
    assert e.value.field == "source.bucket"
    assert e.value.message.startswith("source.bucket: listing s3://docs/ (s3) was refused; credentials come from "
                                      "the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")


def test_credentials_are_never_read_from_the_pipeline_file(tmp_path):
    path = write_pipeline(tmp_path, """\
        name: bucket
        source: {type: s3, bucket: docs, aws_secret_access_key: hunter2}
        steps:
          - encode: {model: tiny/embed}
        sinks:
          - {type: lancedb, uri: ./lance, collection: bucket}
    """)
    with pytest.raises(SpecError) as e:
        load_pipeline(path)
    assert "source.aws_secret_access_key" in str(e.value) and "hunter2" not in str(e.value)


def test_an_object_source_rerun_after_the_sink_was_dropped_backfills_it(tmp_path, engine, s3, moto):
    """The marks say what a sink held: when the collection is gone, every object is downloaded again."""
    client, bucket = s3
    put(client, bucket, {"a.txt": "alpha", "b.txt": "beta"})
    path = pipeline(tmp_path, moto, bucket)
    assert ingest(path, engine).state == "succeeded"
    sink = open_sink_of(path)
    try:
        sink.drop()
    finally:
        sink.close()
    moto.forget()
    report = ingest(path, engine)
    assert report.state == "succeeded", report.errors
    assert moto.downloads() == ["a.txt", "b.txt"]
    assert sorted(records(tmp_path)) == ["a.txt", "b.txt"]


def test_a_run_stopped_inside_a_table_object_downloads_it_again_and_ends_with_exact_records(tmp_path, engine, s3,
                                                                                           moto):
    """The object's mark is written only after all of its rows are committed: a run stopped after its first
    batch leaves none, so the rerun reads the object again and finishes it (no row lost, none twice)."""
    import threading

    from pipelines.runner import IngestRunner

    client, bucket = s3
    put(client, bucket, {"t.jsonl": "".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(6))})
    path = write_pipeline(tmp_path, f"""\
        name: bucket
        source: {{type: s3, bucket: {bucket}, endpoint_url: "{moto.url}"}}
        steps:
          - encode: {{model: tiny/embed}}
        sinks:
          - {{type: lancedb, uri: ./lance, collection: bucket}}
        batch: {{size: 2, queue: 1}}
    """)
    stop = threading.Event()
    store = open_store(tmp_path / ".sie" / "runs.sqlite")
    try:
        def stop_after_first_commit(event: str, data: dict) -> None:
            if event == "committed" and data["sources"]:
                stop.set()
        p = load_pipeline(path, strict_env=True)
        report = IngestRunner(p, engine, store, listener=stop_after_first_commit, stop=stop).run()
        assert report.state == "interrupted"
        assert 2 <= len(records(tmp_path)) < 6 and store.objects("bucket", p.sinks[0].key, "0/1") == {}
    finally:
        store.close()
    moto.forget()
    again = ingest(path, engine)
    assert again.state == "succeeded", again.errors
    assert moto.downloads() == ["t.jsonl"]
    assert sorted(records(tmp_path)) == [f"t.jsonl#{i}" for i in range(1, 7)]
    moto.forget()
    assert stages(ingest(path, engine)) == {"listed": 6, "skipped": 6} and moto.downloads() == []
