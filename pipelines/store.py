"""The run store: what the runner knows between runs, in SQLite (the embedded default) or Postgres
(`postgresql://...`, for indexed jobs that share it). Same SQL for both.

    sources(pipeline, sink, source, hash, fingerprint, high_water, records, updated_at)
        per source and sink: the content hash and steps fingerprint last committed (NULL hash: written
        but never committed), and `high_water`: one more than the highest chunk index that may exist
        in the sink. It is raised before a write and lowered only after stale chunks are deleted, so
        stale chunks can always be found again after a crash. `records`: how many it committed.
    sinks(pipeline, sink, generation, physical, staging, retired, updated_at)
        per sink: the generation marker of the collection the source rows describe and its physical
        name, so a run can tell that the collection was recreated under it (pipelines.drift); during a
        blue/green reindex the physical collection being filled (`staging`, whose source rows are kept
        under the sink key `<sink>#<physical>`), and the retired collections with when they were retired.
    reindex_shards(pipeline, sink, physical, shards, shard, run_id, finished_at)
        per reindex (the physical collection being filled) and shard count N: which shards i of N have
        completed it cleanly, so that the run whose completion makes the set whole switches it (`--shard`
        runs each see only their part of the sources). Completions under another N never count towards N.
    objects(pipeline, sink, shard, object, version, fingerprint, documents, updated_at)
        per object of a bucket source, sink and shard: the listed version (ETag, version, size)
        whose `documents` were all committed into the sink under `fingerprint` (pipelines.objects). Written
        after those sources' own commit, so a crash in between costs one more download, never a skip of
        something uncommitted; moved and forgotten with the sink's source rows.
    runs(id, pipeline, state, ..., counters, errors, idempotency_key)
        one row per run: state, counters per stage and sink, errors; the REST API reads it.

Every method is one transaction; a killed process leaves each one applied or not at all. The ones that
decide a reindex (begin, complete a shard, promote) also hold the sink's lock (`_lock_sink`), so two shards
finishing at once are serialized: exactly one of them sees the set whole, and a promote applies once.
Tables are created if missing, so an older store gains the new ones when it is opened.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import PipelineError, RunNotFound

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS sources (
        pipeline TEXT NOT NULL, sink TEXT NOT NULL, source TEXT NOT NULL,
        hash TEXT, fingerprint TEXT, high_water INTEGER NOT NULL DEFAULT 0, updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (pipeline, sink, source))""",
    """CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, state TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION, shard TEXT, idempotency_key TEXT, request TEXT, counters TEXT, errors TEXT)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_idempotency ON runs (pipeline, idempotency_key)",
    """CREATE TABLE IF NOT EXISTS sinks (
        pipeline TEXT NOT NULL, sink TEXT NOT NULL, generation TEXT, physical TEXT, staging TEXT, retired TEXT,
        updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (pipeline, sink))""",
    """CREATE TABLE IF NOT EXISTS reindex_shards (
        pipeline TEXT NOT NULL, sink TEXT NOT NULL, physical TEXT NOT NULL, shards INTEGER NOT NULL,
        shard INTEGER NOT NULL, run_id TEXT, finished_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (pipeline, sink, physical, shards, shard))""",
    # A table of its own (no column on `sources`): stores made before it get it from this statement.
    """CREATE TABLE IF NOT EXISTS objects (
        pipeline TEXT NOT NULL, sink TEXT NOT NULL, shard TEXT NOT NULL, object TEXT NOT NULL, version TEXT NOT NULL,
        fingerprint TEXT NOT NULL, documents INTEGER NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (pipeline, sink, shard, object))""",
]
RUN_STATES = ("queued", "running", "succeeded", "partial", "failed", "interrupted")
MAX_ERRORS = 100


@dataclass(frozen=True, slots=True)
class SourceState:
    hash: str | None
    fingerprint: str | None
    high_water: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class ObjectState:
    version: str
    fingerprint: str
    documents: int


@dataclass(frozen=True, slots=True)
class SinkState:
    generation: str | None
    physical: str | None
    staging: str | None
    retired: list[tuple[str, float]]     # (physical collection, retired at), oldest first


def staging_key(sink: str, physical: str) -> str:
    """The sink key the source rows of a reindex into `physical` are kept under until the switch."""
    return f"{sink}#{physical}"


@dataclass
class RunRecord:
    id: str
    pipeline: str
    state: str
    created_at: float
    finished_at: float | None = None
    shard: str | None = None
    idempotency_key: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "pipeline": self.pipeline, "state": self.state, "created_at": self.created_at,
                "finished_at": self.finished_at, "shard": self.shard, "counters": self.counters,
                "errors": self.errors}


class RunStore:
    def __init__(self, connection: Any, dialect: str, where: str) -> None:
        self._conn, self.dialect, self.where = connection, dialect, where
        self._lock = threading.RLock()
        with self._tx() as cur:
            if dialect == "postgres":
                # Concurrent `CREATE TABLE IF NOT EXISTS` can collide in Postgres (two shards starting at
                # once): serialize schema creation with a transaction-scoped advisory lock.
                cur.execute("SELECT pg_advisory_xact_lock(7410251)")
            for statement in SCHEMA:
                cur.execute(statement)
            self._add_records_column(cur)

    def _add_records_column(self, cur: Any) -> None:
        """Stores made before `sources.records` existed get the column (NULL: count not known)."""
        if self.dialect == "postgres":
            cur.execute("ALTER TABLE sources ADD COLUMN IF NOT EXISTS records INTEGER")
            return
        cur.execute("PRAGMA table_info(sources)")
        if "records" not in {row[1] for row in cur.fetchall()}:
            cur.execute("ALTER TABLE sources ADD COLUMN records INTEGER")

    # -- plumbing ----------------------------------------------------------------------------------
    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dialect == "postgres" else statement

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                yield _Cursor(cur, self._sql)
                self._conn.commit()
            except PipelineError:
                self._conn.rollback()
                raise
            except Exception as e:
                try:
                    self._conn.rollback()
                except Exception:  # the connection itself is gone; the error below says so
                    pass
                if not _database_error(e):
                    raise
                raise PipelineError(f"run store ({self.where}): {type(e).__name__}: {str(e).strip()}",
                                    field="store", code="store_error") from e
            except BaseException:
                self._conn.rollback()
                raise
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- sources -----------------------------------------------------------------------------------
    def sources(self, pipeline: str, sink: str) -> dict[str, SourceState]:
        with self._tx() as cur:
            cur.execute("SELECT source, hash, fingerprint, high_water, updated_at FROM sources "
                        "WHERE pipeline = ? AND sink = ?", (pipeline, sink))
            return {row[0]: SourceState(row[1], row[2], int(row[3]), float(row[4])) for row in cur.fetchall()}

    def raise_high_water(self, pipeline: str, sink: str, marks: Iterable[tuple[str, int]]) -> None:
        """Before writing: chunks up to these indices may exist from now on (a row is created if needed)."""
        now = time.time()
        with self._tx() as cur:
            cur.executemany(
                "INSERT INTO sources (pipeline, sink, source, hash, fingerprint, high_water, updated_at) "
                "VALUES (?, ?, ?, NULL, NULL, ?, ?) ON CONFLICT (pipeline, sink, source) DO UPDATE SET "
                "high_water = CASE WHEN excluded.high_water > sources.high_water THEN excluded.high_water "
                "ELSE sources.high_water END",
                [(pipeline, sink, source, hw, now) for source, hw in marks])

    def commit(self, pipeline: str, sink: str, rows: Iterable[tuple]) -> None:
        """After writing and deleting stale chunks: (source, hash, fingerprint, high_water[, records]) are now
        true (records left out: not known)."""
        now = time.time()
        with self._tx() as cur:
            cur.executemany(
                "INSERT INTO sources (pipeline, sink, source, hash, fingerprint, high_water, records, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, sink, source) DO UPDATE SET "
                "hash = excluded.hash, fingerprint = excluded.fingerprint, high_water = excluded.high_water, "
                "records = excluded.records, updated_at = excluded.updated_at",
                [(pipeline, sink, source, h, fp, hw, n[0] if n else None, now) for source, h, fp, hw, *n in rows])

    def committed_records(self, pipeline: str, sink: str) -> tuple[int, int]:
        """(committed sources, records they committed) for a sink."""
        with self._tx() as cur:
            cur.execute("SELECT COUNT(*), COALESCE(SUM(records), 0) FROM sources "
                        "WHERE pipeline = ? AND sink = ? AND hash IS NOT NULL", (pipeline, sink))
            row = cur.fetchone()
        return int(row[0]), int(row[1])

    # -- objects of a bucket source ----------------------------------------------------------------
    def objects(self, pipeline: str, sink: str, shard: str) -> dict[str, ObjectState]:
        with self._tx() as cur:
            cur.execute("SELECT object, version, fingerprint, documents FROM objects "
                        "WHERE pipeline = ? AND sink = ? AND shard = ?", (pipeline, sink, shard))
            return {row[0]: ObjectState(row[1], row[2], int(row[3])) for row in cur.fetchall()}

    def commit_objects(self, pipeline: str, sink: str, shard: str, rows: Iterable[tuple[str, str, str, int]]) -> None:
        """After the sources of these objects were committed: (object, version, fingerprint, documents)."""
        now = time.time()
        with self._tx() as cur:
            cur.executemany(
                "INSERT INTO objects (pipeline, sink, shard, object, version, fingerprint, documents, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, sink, shard, object) DO UPDATE SET "
                "version = excluded.version, fingerprint = excluded.fingerprint, documents = excluded.documents, "
                "updated_at = excluded.updated_at",
                [(pipeline, sink, shard, key, version, fp, n, now) for key, version, fp, n in rows])

    def forget_objects(self, pipeline: str, sink: str, shard: str, keys: Iterable[str]) -> None:
        with self._tx() as cur:
            cur.executemany("DELETE FROM objects WHERE pipeline = ? AND sink = ? AND shard = ? AND object = ?",
                            [(pipeline, sink, shard, k) for k in keys])

    # -- sinks -------------------------------------------------------------------------------------
    def sink_state(self, pipeline: str, sink: str) -> SinkState:
        with self._tx() as cur:
            cur.execute("SELECT generation, physical, staging, retired FROM sinks WHERE pipeline = ? AND sink = ?",
                        (pipeline, sink))
            row = cur.fetchone()
        if row is None:
            return SinkState(None, None, None, [])
        return SinkState(row[0], row[1], row[2], [tuple(r) for r in json.loads(row[3] or "[]")])

    def _set_sink(self, cur: Any, pipeline: str, sink: str, **values: Any) -> None:
        names = list(values)
        cur.execute(f"INSERT INTO sinks (pipeline, sink, {', '.join(names)}, updated_at) VALUES (?, ?, "
                    f"{', '.join('?' for _ in names)}, ?) ON CONFLICT (pipeline, sink) DO UPDATE SET "
                    + ", ".join(f"{n} = excluded.{n}" for n in [*names, "updated_at"]),
                    (pipeline, sink, *values.values(), time.time()))

    def record_generation(self, pipeline: str, sink: str, generation: str, physical: str,
                          stale: Iterable[str] = ()) -> None:
        """The source rows describe the collection `physical` of this generation; the `stale` sources'
        rows no longer hold (the collection lost them) and are redone, keeping their high-water marks."""
        with self._tx() as cur:
            cur.executemany("UPDATE sources SET hash = NULL, fingerprint = NULL, records = NULL "
                            "WHERE pipeline = ? AND sink = ? AND source = ?", [(pipeline, sink, s) for s in stale])
            self._set_sink(cur, pipeline, sink, generation=generation, physical=physical)

    def _lock_sink(self, cur: Any, pipeline: str, sink: str) -> None:
        """Serialize the reindex decisions about one sink across processes, until this transaction ends:
        SQLite takes its write lock now (one writer at a time, so what is read next is current); Postgres a
        transaction-scoped advisory lock on the (pipeline, sink) pair (row locks cannot cover rows that do
        not exist yet, and READ COMMITTED would let two shards each miss the other's completion)."""
        if self.dialect == "postgres":
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(CAST(? AS TEXT)))", (f"sie-sink:{pipeline}:{sink}",))
        elif not self._conn.in_transaction:
            cur.execute("BEGIN IMMEDIATE")

    def begin_reindex(self, pipeline: str, sink: str, physical: str) -> bool:
        """Start filling `physical` for the sink (False: already under way, e.g. begun by another shard).
        A new reindex starts with no shard completions, even for a physical name used before (a rollback)."""
        with self._tx() as cur:
            self._lock_sink(cur, pipeline, sink)
            cur.execute("SELECT staging FROM sinks WHERE pipeline = ? AND sink = ?", (pipeline, sink))
            row = cur.fetchone()
            if row is not None and row[0] == physical:
                return False
            cur.execute("DELETE FROM reindex_shards WHERE pipeline = ? AND sink = ?", (pipeline, sink))
            self._set_sink(cur, pipeline, sink, staging=physical)
            return True

    def complete_shard(self, pipeline: str, sink: str, physical: str, shard: int, shards: int,
                       run_id: str | None = None) -> list[int]:
        """Shard `shard` of `shards` has every one of its sources in the reindex into `physical` (idempotent:
        a rerun only refreshes its row). Returns the shards of that count still missing: empty means this
        completion made the set whole. Nothing is recorded, and every shard is missing, unless the sink is
        still staging `physical` (the switch already happened, or another reindex replaced this one)."""
        with self._tx() as cur:
            self._lock_sink(cur, pipeline, sink)
            cur.execute("SELECT staging FROM sinks WHERE pipeline = ? AND sink = ?", (pipeline, sink))
            row = cur.fetchone()
            if row is None or row[0] != physical:
                return list(range(shards))
            cur.execute("INSERT INTO reindex_shards (pipeline, sink, physical, shards, shard, run_id, finished_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, sink, physical, shards, shard) DO UPDATE "
                        "SET run_id = excluded.run_id, finished_at = excluded.finished_at",
                        (pipeline, sink, physical, shards, shard, run_id, time.time()))
            cur.execute("SELECT shard FROM reindex_shards WHERE pipeline = ? AND sink = ? AND physical = ? "
                        "AND shards = ?", (pipeline, sink, physical, shards))
            done = {int(r[0]) for r in cur.fetchall()}
        return [i for i in range(shards) if i not in done]

    def withdraw_shard(self, pipeline: str, sink: str, physical: str, shard: int, shards: int) -> None:
        """A rerun of the shard did not complete cleanly: its earlier completion no longer holds."""
        with self._tx() as cur:
            self._lock_sink(cur, pipeline, sink)
            cur.execute("DELETE FROM reindex_shards WHERE pipeline = ? AND sink = ? AND physical = ? AND shards = ? "
                        "AND shard = ?", (pipeline, sink, physical, shards, shard))

    def shard_completions(self, pipeline: str, sink: str, physical: str) -> dict[int, list[int]]:
        """Shard count -> the shards of that count that completed the reindex into `physical`."""
        with self._tx() as cur:
            cur.execute("SELECT shards, shard FROM reindex_shards WHERE pipeline = ? AND sink = ? AND physical = ? "
                        "ORDER BY shards, shard", (pipeline, sink, physical))
            out: dict[int, list[int]] = {}
            for shards, shard in cur.fetchall():
                out.setdefault(int(shards), []).append(int(shard))
        return out

    def promote(self, pipeline: str, sink: str, old: str, new: str, generation: str,
                retired: list[tuple[str, float]]) -> bool:
        """After the switch from `old` to `new`, in one transaction: the staged rows of `new` become the sink's,
        and the sink's rows (and generation) move under `old`'s staging key, so a rollback to it redoes only
        what changed since. Applied once: False (nothing changed) when the sink is no longer staging `new`,
        because another run (a shard finishing at the same time) promoted it already."""
        parked, staged = staging_key(sink, old), staging_key(sink, new)
        with self._tx() as cur:
            self._lock_sink(cur, pipeline, sink)
            cur.execute("SELECT staging FROM sinks WHERE pipeline = ? AND sink = ?", (pipeline, sink))
            row = cur.fetchone()
            if row is None or row[0] != new:
                return False
            for key in (parked, staged):
                cur.execute("DELETE FROM sinks WHERE pipeline = ? AND sink = ?", (pipeline, key))
            for table in ("sources", "objects"):
                cur.execute(f"DELETE FROM {table} WHERE pipeline = ? AND sink = ?", (pipeline, parked))
                cur.execute(f"UPDATE {table} SET sink = ? WHERE pipeline = ? AND sink = ?", (parked, pipeline, sink))
                cur.execute(f"UPDATE {table} SET sink = ? WHERE pipeline = ? AND sink = ?", (sink, pipeline, staged))
            cur.execute("INSERT INTO sinks (pipeline, sink, generation, physical, updated_at) SELECT pipeline, ?, "
                        "generation, physical, updated_at FROM sinks WHERE pipeline = ? AND sink = ?",
                        (parked, pipeline, sink))
            cur.execute("DELETE FROM reindex_shards WHERE pipeline = ? AND sink = ?", (pipeline, sink))
            self._set_sink(cur, pipeline, sink, generation=generation, physical=new, staging=None,
                           retired=json.dumps(retired))
            return True

    def forget_sink(self, pipeline: str, sink: str) -> None:
        """Every row of a sink key (a dropped collection's)."""
        with self._tx() as cur:
            cur.execute("DELETE FROM sources WHERE pipeline = ? AND sink = ?", (pipeline, sink))
            cur.execute("DELETE FROM objects WHERE pipeline = ? AND sink = ?", (pipeline, sink))
            cur.execute("DELETE FROM sinks WHERE pipeline = ? AND sink = ?", (pipeline, sink))

    def set_retired(self, pipeline: str, sink: str, retired: list[tuple[str, float]]) -> None:
        with self._tx() as cur:
            self._set_sink(cur, pipeline, sink, retired=json.dumps(retired))

    def forget(self, pipeline: str, sink: str, sources: Iterable[str]) -> None:
        with self._tx() as cur:
            cur.executemany("DELETE FROM sources WHERE pipeline = ? AND sink = ? AND source = ?",
                            [(pipeline, sink, s) for s in sources])

    # -- runs --------------------------------------------------------------------------------------
    def create_run(self, pipeline: str, *, request: dict[str, Any] | None = None, shard: str | None = None,
                   idempotency_key: str | None = None, state: str = "queued") -> tuple[RunRecord, bool]:
        """(run, created): with an idempotency key already used for this pipeline, the earlier run."""
        if idempotency_key is not None:
            existing = self.find_run(pipeline, idempotency_key)
            if existing is not None:
                return existing, False
        run = RunRecord(uuid.uuid4().hex, pipeline, state, time.time(), shard=shard,
                        idempotency_key=idempotency_key, request=request or {})
        try:
            with self._tx() as cur:
                cur.execute("INSERT INTO runs (id, pipeline, state, created_at, shard, idempotency_key, request, "
                            "counters, errors) VALUES (?, ?, ?, ?, ?, ?, ?, '{}', '[]')",
                            (run.id, pipeline, state, run.created_at, shard, idempotency_key,
                             json.dumps(run.request)))
        except Exception:
            # Two requests with one key raced: the other insert won; answer with its run.
            existing = self.find_run(pipeline, idempotency_key) if idempotency_key else None
            if existing is None:
                raise
            return existing, False
        return run, True

    def update_run(self, run_id: str, *, state: str | None = None, counters: dict[str, Any] | None = None,
                   errors: list[str] | None = None, finished: bool = False) -> None:
        sets, args = [], []
        if state is not None:
            sets.append("state = ?")
            args.append(state)
        if counters is not None:
            sets.append("counters = ?")
            args.append(json.dumps(counters))
        if errors is not None:
            sets.append("errors = ?")
            args.append(json.dumps(errors[:MAX_ERRORS]))
        if finished:
            sets.append("finished_at = ?")
            args.append(time.time())
        if sets:
            with self._tx() as cur:
                cur.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", (*args, run_id))

    def get_run(self, run_id: str) -> RunRecord:
        with self._tx() as cur:
            cur.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
            row = cur.fetchone()
        if row is None:
            raise RunNotFound(f"run: no run with id {run_id!r}", field="run_id")
        return _run(row)

    def find_run(self, pipeline: str, idempotency_key: str) -> RunRecord | None:
        with self._tx() as cur:
            cur.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE pipeline = ? AND idempotency_key = ?",
                        (pipeline, idempotency_key))
            row = cur.fetchone()
        return None if row is None else _run(row)

    def interrupt_unfinished(self, pipelines: Iterable[str]) -> int:
        """Runs left queued/running by a process that is gone are marked interrupted (a rerun completes them)."""
        names = list(pipelines)
        if not names:
            return 0
        with self._tx() as cur:
            marks = ", ".join("?" for _ in names)
            cur.execute(f"UPDATE runs SET state = 'interrupted', finished_at = ? WHERE state IN ('queued', 'running') "
                        f"AND pipeline IN ({marks})", (time.time(), *names))
            return cur.rowcount


def _database_error(e: Exception) -> bool:
    """sqlite3 and psycopg errors (both DB-API `Error` subclasses), not bugs in this module."""
    return any(cls.__name__ in ("Error", "DatabaseError", "OperationalError") and cls.__module__.startswith(
        ("sqlite3", "psycopg")) for cls in type(e).__mro__)


_RUN_COLUMNS = "id, pipeline, state, created_at, finished_at, shard, idempotency_key, request, counters, errors"


def _run(row: tuple) -> RunRecord:
    return RunRecord(row[0], row[1], row[2], float(row[3]), None if row[4] is None else float(row[4]), row[5],
                     row[6], json.loads(row[7] or "{}"), json.loads(row[8] or "{}"), json.loads(row[9] or "[]"))


class _Cursor:
    """A DB-API cursor that takes '?' placeholders on either database."""

    def __init__(self, cur: Any, sql: Any) -> None:
        self._cur, self._sql = cur, sql

    def execute(self, statement: str, args: tuple = ()) -> None:
        self._cur.execute(self._sql(statement), args)

    def executemany(self, statement: str, rows: list[tuple]) -> None:
        if rows:
            self._cur.executemany(self._sql(statement), rows)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount


def open_store(url: str | Path) -> RunStore:
    """`postgresql://user@host/db` (psycopg), or a SQLite file path / `sqlite:///path`."""
    text = str(url)
    if re.match(r"^postgres(ql)?://", text):
        try:
            import psycopg
        except ImportError:
            raise PipelineError("run store: a Postgres URL needs psycopg (pip install 'sie[pipelines]')",
                                field="store") from None
        try:
            conn = psycopg.connect(text, connect_timeout=10)
        except psycopg.Error as e:
            shown = re.sub(r"//[^@/]*@", "//***@", text)  # never echo a password
            raise PipelineError(f"run store: cannot connect to {shown}: {str(e).strip()}", field="store",
                                code="store_unavailable") from None
        return RunStore(conn, "postgres", re.sub(r"//[^@/]*@", "//***@", text))
    path = Path(text.removeprefix("sqlite:///") if text.startswith("sqlite:///") else text)
    conn = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # WAL: a killed writer never corrupts the file, readers (the REST API) are not blocked by the runner,
        # and shards sharing one file wait for each other (busy timeout) instead of failing.
        conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level="DEFERRED")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except (OSError, sqlite3.Error) as e:
        if conn is not None:
            conn.close()
        read_only = path.parent.is_dir() and not os.access(path.parent, os.W_OK)
        raise PipelineError(f"run store ({path}): cannot open it: {type(e).__name__}: {e}"
                            + ("; its folder is read-only" if read_only else ""), field="store",
                            code="store_unavailable") from None
    return RunStore(conn, "sqlite", str(path))
