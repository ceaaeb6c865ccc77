"""The run store on SQLite (the embedded default) and on a real Postgres (the cluster's): high-water
marks that only rise until a commit, runs and idempotency keys (also across two connections racing),
the shard completions of a reindex (two shards finishing at once: exactly one completes the set, and a
promote applies once; an older store gains the table), and two `sie run --shard i/2` jobs sharing a
Postgres store and a Chroma server, also through a reindex that switches once.

Postgres: $SIE_TEST_POSTGRES_URL if set, else a throwaway server started from the local binaries
(/usr/lib/postgresql/*/bin); the tests skip, saying so, only when neither exists."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
from pipeline_helpers import chunk_ids, paragraphs, write_corpus, write_pipeline
from servers import SIE, free_port

from pipelines.errors import PipelineError, RunNotFound
from pipelines.store import open_store


@pytest.fixture(scope="session")
def postgres_server():
    """A base URL (without database) of a Postgres server for the session."""
    if os.environ.get("SIE_TEST_POSTGRES_URL"):
        yield os.environ["SIE_TEST_POSTGRES_URL"]
        return
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("no Postgres: set SIE_TEST_POSTGRES_URL, or install the postgresql package (initdb not found "
                    "under /usr/lib/postgresql/*/bin)")
    bindir = Path(found[-1]).parent
    # Postgres refuses to run as root: run it as the `postgres` user, in a folder that user owns.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="sie-pg-"))
    if as_user:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "sie", "-E", "UTF8",
                    "--no-locale"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://sie@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(server: str) -> str:
    import psycopg

    name = "t" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "runs.sqlite")
    return fresh_database(request.getfixturevalue("postgres_server"))


def test_high_water_only_rises_until_a_commit(store_url):
    store = open_store(store_url)
    store.raise_high_water("p", "sink", [("a", 5), ("b", 2)])
    store.raise_high_water("p", "sink", [("a", 3)])                  # a smaller version never lowers it
    states = store.sources("p", "sink")
    assert (states["a"].high_water, states["a"].hash, states["b"].high_water) == (5, None, 2)
    store.commit("p", "sink", [("a", "sha256:1", "fp", 3)])            # stale chunks 3-4 were deleted
    a = store.sources("p", "sink")["a"]
    assert (a.hash, a.fingerprint, a.high_water) == ("sha256:1", "fp", 3)
    assert store.sources("p", "other") == {} and store.sources("q", "sink") == {}
    store.forget("p", "sink", ["a"])
    assert set(store.sources("p", "sink")) == {"b"}
    store.close()


def test_object_marks_per_shard_move_with_a_reindex_and_go_with_the_sink(store_url):
    """A bucket source's object versions (pipelines.objects): per sink and shard; a blue/green switch moves them
    with the source rows, and forgetting a sink key forgets them."""
    store = open_store(store_url)
    store.commit_objects("p", "sink", "0/1", [("a.txt", "etag1|7", "fp", 1), ("t.csv", "etag2|30", "fp", 2)])
    store.commit_objects("p", "sink", "0/1", [("a.txt", "etag3|9", "fp", 1)])      # a newer version replaces it
    store.commit_objects("p", "sink", "1/2", [("a.txt", "other", "fp", 1)])
    marks = store.objects("p", "sink", "0/1")
    assert {k: (m.version, m.documents) for k, m in marks.items()} == {"a.txt": ("etag3|9", 1),
                                                                       "t.csv": ("etag2|30", 2)}
    assert set(store.objects("p", "sink", "1/2")) == {"a.txt"} and store.objects("p", "other", "0/1") == {}
    assert store.begin_reindex("p", "sink", "new")
    store.commit_objects("p", "sink#new", "0/1", [("b.txt", "e|1", "fp2", 1)])        # staged by a reindex
    assert store.promote("p", "sink", "old", "new", "gen", [])
    assert set(store.objects("p", "sink", "0/1")) == {"b.txt"}
    assert set(store.objects("p", "sink#old", "0/1")) == {"a.txt", "t.csv"}
    store.forget_objects("p", "sink", "0/1", ["b.txt"])
    store.forget_sink("p", "sink#old")
    assert store.objects("p", "sink", "0/1") == {} and store.objects("p", "sink#old", "0/1") == {}
    store.close()


def test_a_store_made_before_object_marks_opens_and_keeps_its_rows(tmp_path):
    """The objects table is added to an existing store (CREATE TABLE IF NOT EXISTS); nothing else changes."""
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:   # the schema as it was before: no objects table
        conn.execute("CREATE TABLE sources (pipeline TEXT NOT NULL, sink TEXT NOT NULL, source TEXT NOT NULL, "
                     "hash TEXT, fingerprint TEXT, high_water INTEGER NOT NULL DEFAULT 0, updated_at DOUBLE "
                     "PRECISION NOT NULL, records INTEGER, PRIMARY KEY (pipeline, sink, source))")
        conn.execute("INSERT INTO sources VALUES ('p', 'sink', 'a.txt', 'h', 'fp', 1, 0, 1)")
    store = open_store(path)
    assert store.objects("p", "sink", "0/1") == {} and store.sources("p", "sink")["a.txt"].hash == "h"
    store.commit_objects("p", "sink", "0/1", [("a.txt", "v", "fp", 1)])
    assert store.objects("p", "sink", "0/1")["a.txt"].version == "v"
    store.close()


def test_runs_idempotency_and_interruption(store_url):
    store = open_store(store_url)
    run, created = store.create_run("p", idempotency_key="k1", request={"records": 3})
    again, created_again = store.create_run("p", idempotency_key="k1")
    other, _ = store.create_run("q", idempotency_key="k1")
    assert created and not created_again and again.id == run.id and other.id != run.id
    store.update_run(run.id, state="running", counters={"stages": {"read": 3}}, errors=["e"] * 150)
    got = store.get_run(run.id)
    assert (got.state, got.counters, len(got.errors), got.request) == ("running", {"stages": {"read": 3}}, 100,
                                                                        {"records": 3})
    assert store.interrupt_unfinished(["p"]) == 1
    assert store.get_run(run.id).state == "interrupted" and store.get_run(run.id).finished_at is not None
    with pytest.raises(RunNotFound, match="no run with id 'nope'"):
        store.get_run("nope")
    store.close()


def test_one_idempotency_key_racing_on_two_connections_makes_one_run(store_url):
    stores = [open_store(store_url) for _ in range(2)]
    results = []
    barrier = threading.Barrier(2)

    def create(store):
        barrier.wait()
        results.append(store.create_run("p", idempotency_key="same"))

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({run.id for run, _ in results}) == 1 and sorted(c for _, c in results) == [False, True]
    for s in stores:
        s.close()


def race(stores, call) -> list:
    """call(store, i) on each store at once (one thread each); the results in store order."""
    results: list = [None] * len(stores)
    barrier = threading.Barrier(len(stores))

    def go(i: int) -> None:
        barrier.wait()
        results[i] = call(stores[i], i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_shard_completions_of_a_reindex(store_url):
    store = open_store(store_url)
    assert store.complete_shard("p", "s", "s__1", 0, 2) == [0, 1]      # not staging it: nothing recorded
    assert store.begin_reindex("p", "s", "s__1") and not store.begin_reindex("p", "s", "s__1")
    assert store.complete_shard("p", "s", "s__1", 0, 2, "run-a") == [1]
    assert store.complete_shard("p", "s", "s__1", 0, 2, "run-b") == [1]  # a rerun: idempotent
    assert store.complete_shard("p", "s", "s__1", 1, 3) == [0, 2]         # another N counts apart
    assert store.shard_completions("p", "s", "s__1") == {2: [0], 3: [1]}
    store.withdraw_shard("p", "s", "s__1", 0, 2)                          # a failed rerun of shard 0
    assert store.complete_shard("p", "s", "s__1", 1, 2) == [0]
    assert store.complete_shard("p", "s", "s__1", 0, 2) == []            # whole
    assert store.promote("p", "s", "s", "s__1", "g1", [("s", 1.0)])
    assert not store.promote("p", "s", "s", "s__1", "g1", [])            # applied once
    state = store.sink_state("p", "s")
    assert (state.physical, state.staging, state.retired) == ("s__1", None, [("s", 1.0)])
    assert store.shard_completions("p", "s", "s__1") == {}
    store.begin_reindex("p", "s", "s__2")
    store.complete_shard("p", "s", "s__2", 0, 2)
    store.begin_reindex("p", "s", "s__1")                                 # a rollback starts from nothing
    assert store.shard_completions("p", "s", "s__2") == {} and store.complete_shard("p", "s", "s__1", 1, 2) == [0]
    store.close()


def test_two_shards_finishing_at_once_complete_the_set_once_and_promote_once(store_url):
    stores = [open_store(store_url) for _ in range(2)]
    for round_ in range(5):
        physical = f"s__{round_}"
        stores[0].begin_reindex("p", "s", physical)
        missing = race(stores, lambda store, i, physical=physical: store.complete_shard("p", "s", physical, i, 2))
        assert sorted(missing) == [[], [missing.index([])]], missing   # one saw it whole; the other missed it
        promoted = race(stores, lambda store, i, physical=physical: store.promote("p", "s", "s", physical, "g", []))
        assert sorted(promoted) == [False, True] and stores[1].sink_state("p", "s").physical == physical
    for s in stores:
        s.close()


def test_an_older_store_gains_the_shard_completions_table(store_url, tmp_path):
    store = open_store(store_url)
    store.begin_reindex("p", "s", "s__1")
    store.close()
    if store_url.startswith("postgres"):
        import psycopg

        with psycopg.connect(store_url, autocommit=True) as conn:
            conn.execute("DROP TABLE reindex_shards")
    else:
        import sqlite3

        with sqlite3.connect(store_url) as conn:
            conn.execute("DROP TABLE reindex_shards")
        conn.close()
    store = open_store(store_url)                                         # as a store made before it existed
    assert store.sink_state("p", "s").staging == "s__1" and store.complete_shard("p", "s", "s__1", 0, 1) == []
    store.close()


def test_a_postgres_password_is_never_echoed():
    with pytest.raises(PipelineError) as e:
        open_store(f"postgresql://sie:hunter2@127.0.0.1:{free_port()}/db")
    assert "hunter2" not in e.value.message and "//***@127.0.0.1" in e.value.message


def test_indexed_jobs_share_a_postgres_store(tmp_path, postgres_server, engine_server, chroma_server, cli_env):
    """Two shards run at once, as a Kubernetes indexed Job would: together they write every source
    exactly once; a second round finds nothing to do."""
    url = fresh_database(postgres_server)
    counts = {f"d{i}.md": 1 + i % 3 for i in range(12)}
    write_corpus(tmp_path / "docs", {n: paragraphs(n, 1, c) for n, c in counts.items()})
    collection = "s" + uuid.uuid4().hex[:10]
    path = write_pipeline(tmp_path, f"""\
        name: sharded
        engine: {engine_server.url}
        source: {{type: files, root: ./docs}}
        steps:
          - chunk: {{by: paragraphs, size: 1}}
          - encode: {{model: tiny/embed}}
        sinks:
          - {{type: chroma, url: "{chroma_server}", collection: {collection}}}
    """)

    def round_() -> list[dict]:
        import json

        procs = [subprocess.Popen([SIE, "run", str(path), "--shard", f"{i}/2", "--store", url, "--json"],
                                  env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]   # the reindex round loads MiniLM on a busy machine
        assert all(p.returncode == 0 for p in procs), outs
        return [json.loads(out.splitlines()[-1]) for out, _ in outs]

    first = round_()
    read = [r["counters"]["stages"]["read"] for r in first]
    assert sum(read) == 12 and min(read) > 0                          # both shards had work, none twice
    from connectors import open_sink

    sink = open_sink({"type": "chroma", "url": chroma_server, "collection": collection})
    sink.ensure()
    expected = chunk_ids("sharded", counts)
    assert sink.count() == len(expected) and set(sink.get(list(expected))) == set(expected)
    second = round_()
    assert [r["counters"]["stages"]["read"] for r in second] == [0, 0]
    assert sum(r["counters"]["stages"]["skipped"] for r in second) == 12
    store = open_store(url)
    assert len(store.sources("sharded", next(iter(first[0]["counters"]["sinks"])))) == 12
    store.close()

    # A model change, both shards at once: the new collection is filled by both, and switched by exactly
    # the one whose completion made the set whole.
    path.write_text(path.read_text().replace("tiny/embed", "test/minilm-rerank"))
    third = round_()
    notes = [n for r in third for n in r["counters"]["notes"]]
    assert len([n for n in notes if " switched " in n]) == 1, notes
    assert len([n for n in notes if "waiting for shard(s)" in n]) == 1, notes
    assert sink.follow() and sink.schema.vectors["dense"].dim == 384
    assert sink.count() == len(expected) and set(sink.get(list(expected))) == set(expected)
    sink.drop_other(collection)
    sink.drop()
    sink.close()
