"""The Sink contract: one interface over Chroma, Qdrant, Weaviate and LanceDB.

    sink = open_sink({"type": "lancedb", "uri": "/data/lance", "collection": "docs"})
    sink.ensure(schema)                      # create the collection, or check it matches
    result = sink.upsert(records)            # idempotent; per-item ok / failed with a reason
    sink.delete(ids=[...]) ; sink.delete(where={"source": "a.pdf"})
    hits = sink.search(vector, vector_name="dense", where={"lang": "en"}, limit=10)
    sink.get(ids)                            # {id: Stored(id, text, metadata)} for the ids that exist
    sink.count() ; sink.close()
    sink.generation()                        # the collection's random marker: a recreated one has another
    sink.pin("docs__3f2a91c0"); sink.ensure(new_schema); ...; sink.point()   # blue/green: see below

`upsert` checks every record against the schema first (ids, vector names, kinds, dimensions, metadata): a
record that does not fit fails with its reason and the others are written. Valid records go out in batches
of `batch_size`; when the database refuses a whole batch, the batch is split in halves until the records it
refuses are isolated, so one bad record cannot sink its neighbours. An unreachable database, refused
credentials or an overloaded server are not item failures: they raise `ConnectorError(code="backend_error")`.

Scores in hits are "higher is nearer": cosine similarity for cosine, the dot product for dot (and for
sparse vectors), minus the squared L2 distance for l2, the MaxSim sum for multivectors, and the fusion
score (RRF) for hybrid queries.

The collection remembers the schema it was created with (collection metadata, or the table's Arrow
metadata), so `ensure()` without a schema reopens it, and `ensure(other_schema)` fails instead of mixing
incompatible vectors. Subclasses implement the `_`-prefixed hooks; they never see an invalid record.

Generations: every collection carries a *sink generation*, a random marker written where the schema is kept
when the collection is created (or on the first `generation()` call for one created before markers
existed). A run store that remembers the generation it committed into can tell that the collection it
wrote was dropped and recreated, even when a collection of the same name and schema is back.

Logical and physical names: `collection` in the config is a *logical* name. `ensure()` resolves it to the
physical collection it points to (a Qdrant / Weaviate alias; for Chroma and LanceDB, which have no
aliases, a record in the database's manifest collection `sie_collections`), or to the collection of that
name when nothing points elsewhere. A blue/green reindex pins a sink to a new physical collection
(`pin`), fills it, then switches the logical name to it (`point`); readers call `follow()` before each
query and move over at once, so they see the old collection or the new one, never a half-written one.
Sinks with aliases create a new collection as `<collection>__<schema fingerprint>` with the alias already
pointing at it, so that a later switch is one atomic alias update.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from connectors.config import SinkConfig, parse_config
from connectors.errors import ConnectorError
from connectors.filters import Node, parse_where
from connectors.ids import content_hash, is_canonical_uuid
from connectors.records import Prepared, Record, Schema, SparseVector, check_vector, prepare

MAX_LIMIT = 10_000
#: HTTP statuses that are about the server or the credentials, never about one record.
BACKEND_STATUS = frozenset({401, 403, 407, 429, 502, 503, 504})


def physical_name(logical: str, schema: Schema) -> str:
    """The physical collection a logical name gets for a schema: `<logical>__<8 hex of its fingerprint>` (a
    pattern configs may not use themselves: connectors.config.PHYSICAL_SUFFIX)."""
    return f"{logical}__{content_hash(schema.model_dump(mode='json'))[7:15]}"


def new_generation() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    id: str | None
    ok: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    """One ItemResult per input record, in input order."""

    items: tuple[ItemResult, ...]

    @property
    def written(self) -> int:
        return sum(item.ok for item in self.items)

    @property
    def failed(self) -> list[ItemResult]:
        return [item for item in self.items if not item.ok]

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.items)

    def raise_for_failures(self) -> None:
        if not self.ok:
            first = self.failed[0]
            raise ConnectorError(f"{len(self.failed)} of {len(self.items)} records failed; first: record "
                                 f"{first.index} ({first.id}): {first.error}", field=f"records[{first.index}]",
                                 code="invalid_query")


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Stored:
    """A record as the database holds it (vectors left out), as `get` returns it."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A checked query: one vector (or several, for a fused hybrid query) by name."""

    vectors: dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]]
    where: Node | None
    limit: int


class Sink(ABC):
    """Subclasses set `type`, `config_class`, what they can store / search (`stores`, `searches`, `hybrid`,
    `check_schema`: the one statement of each database's limits), and implement the hooks."""

    type: ClassVar[str]
    config_class: ClassVar[type[SinkConfig]]
    stores: ClassVar[frozenset[str]] = frozenset({"dense"})
    searches: ClassVar[frozenset[str]] = frozenset({"dense"})
    hybrid: ClassVar[bool] = False
    #: The logical name is a database alias (True), or a record in the manifest collection (False).
    aliases: ClassVar[bool] = False

    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self._schema: Schema | None = None
        self.closed = False
        self.physical = config.collection   # the collection the hooks work on (see the module docstring)
        self.pinned = False
        self.created = False                # the last ensure() created the collection

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Sink:
        return cls(parse_config(raw, cls.config_class, env))

    # -- the contract ------------------------------------------------------------------------------
    def ensure(self, schema: Schema | Mapping[str, Any] | None = None) -> Schema:
        """Create the collection for `schema`, or check the existing one matches; None reopens it."""
        wanted = Schema.parse(schema) if schema is not None else None
        if wanted is not None:
            self.check_schema(wanted)
        with self._backend("opening the collection"):
            self._resolve()
            self._open_or_create(wanted)
        assert self._schema is not None
        return self._schema

    def _resolve(self) -> None:
        if not self.pinned:
            self.physical = self._read_pointer() or self.config.collection

    def _open_or_create(self, wanted: Schema | None) -> None:
        self.created = False
        if self._exists():
            stored = self._read_schema()
            if wanted is None:
                if stored is None:
                    raise ConnectorError(f"sink.collection: {self.config.collection!r} exists but was not created "
                                         "by sie (no stored schema); pass its schema to ensure()",
                                         field="sink.collection", code="schema_mismatch")
                self.check_schema(stored)
                wanted = stored
            elif stored is not None and stored != wanted:
                raise ConnectorError(f"sink.collection: {self.config.collection!r} holds {stored.describe()}; "
                                     f"asked for {wanted.describe()}. Use another collection or drop this one",
                                     field="sink.collection", code="schema_mismatch")
            self._opened(wanted)
        else:
            if wanted is None:
                raise ConnectorError(f"sink.collection: {self.type} collection {self.config.collection!r} does not "
                                     "exist; pass a schema to ensure() to create it",
                                     field="sink.collection", code="collection_missing")
            aliased = self.aliases and not self.pinned
            if aliased:
                self.physical = physical_name(self.config.collection, wanted)
            self._create(wanted, new_generation())
            if aliased:
                self._write_pointer(self.physical)
            self.created = True
        self._schema = wanted

    def pin(self, physical: str) -> None:
        """Work on this physical collection itself (a reindex target), not on what the logical name points to."""
        self.physical, self.pinned, self._schema = physical, True, None

    def pointed(self) -> str | None:
        """The physical collection the logical name points to, or None when nothing points anywhere."""
        with self._backend("reading the collection pointer"):
            return self._read_pointer()

    def point(self) -> None:
        """Switch the logical name to this sink's physical collection, atomically: readers that `follow()`
        the name see the collection it pointed to before, or this one."""
        self.schema  # noqa: B018 - the collection must exist
        with self._backend("switching the collection pointer"):
            self._write_pointer(self.physical)

    def follow(self) -> bool:
        """Re-read where the logical name points; when it moved, reopen there. True when it moved."""
        if self.pinned:
            return False
        with self._backend("reading the collection pointer"):
            target = self._read_pointer() or self.config.collection
        if target == self.physical and self._schema is not None:
            return False
        self.physical, self._schema = target, None
        self.ensure()
        return True

    def generation(self) -> str:
        """The collection's sink generation (written now if it has none yet)."""
        self.schema  # noqa: B018 - opens the collection
        with self._backend("reading the generation marker"):
            marker = self._read_generation()
            if marker is None:
                marker = new_generation()
                self._write_generation(marker)
        return marker

    def upsert(self, records: Iterable[Record]) -> WriteResult:
        """Insert or replace each record by id. Never raises for a bad record: see the WriteResult."""
        schema = self.schema
        records = list(records)
        results: list[ItemResult | None] = [None] * len(records)
        ready: list[tuple[int, Prepared]] = []
        first_index: dict[str, int] = {}
        for i, record in enumerate(records):
            item = prepare(record, schema)
            if isinstance(item, Prepared):
                item = self._problem(item) or item
            if isinstance(item, Prepared) and item.id in first_index:
                item = f"duplicate id: record {first_index[item.id]} in this call has the same id"
            if isinstance(item, str):
                results[i] = ItemResult(i, getattr(record, "id", None), False, item)
            else:
                first_index[item.id] = i
                ready.append((i, item))
        size = self.batch_size
        for start in range(0, len(ready), size):
            self._write_isolating(ready[start:start + size], results)
        return WriteResult(tuple(r for r in results if r is not None))

    def delete(self, *, ids: Sequence[str] | None = None, where: Mapping[str, Any] | None = None) -> None:
        """Delete by ids, or by a `where` filter (see connectors.filters). Missing ids are not an error."""
        if (ids is None) == (where is None):
            raise ConnectorError("delete takes exactly one of ids= or where=", field="ids", code="invalid_query")
        self.schema  # noqa: B018 - opens the collection
        if ids is not None:
            ids = list(ids)
            bad = next((x for x in ids if not is_canonical_uuid(x)), None)
            if bad is not None:
                raise ConnectorError(f"ids: {bad!r} is not a canonical UUID string", field="ids", code="invalid_query")
            if ids:
                with self._backend("deleting"):
                    self._delete_ids(ids)
        else:
            node = parse_where(where)
            with self._backend("deleting"):
                self._delete_where(node)

    def search(self, query: Any, *, vector_name: str | None = None, where: Mapping[str, Any] | None = None,
               limit: int = 10) -> list[Hit]:
        """Nearest records to `query`, best first.

        `query` is a dense vector (1-D), a multivector (2-D), a SparseVector, or a dict {vector name: vector}
        to fuse several searches (hybrid; Qdrant only). `vector_name` may be left out when only one of the
        schema's vectors has the query's kind.
        """
        schema = self.schema
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ConnectorError(f"limit must be an integer in 1..{MAX_LIMIT}, got {limit!r}", field="limit",
                                 code="invalid_query")
        node = parse_where(where)
        if isinstance(query, Mapping) and query and all(isinstance(k, str) for k in query):
            if vector_name is not None:
                raise ConnectorError("vector_name: not used with a {name: vector} query", field="vector_name",
                                     code="invalid_query")
            if len(query) > 1 and not self.hybrid:
                raise ConnectorError(f"query: {self.type} cannot fuse several vectors in one search (hybrid); "
                                     "supported by: qdrant. Search one vector name at a time",
                                     field="query", code="unsupported")
            vectors = {name: self._query_vector(value, name, schema) for name, value in query.items()}
        else:
            name = vector_name or self._infer_name(query, schema)
            vectors = {name: self._query_vector(query, name, schema)}
        with self._backend("searching"):
            return self._search(SearchRequest(vectors, node, limit))

    def get(self, ids: Sequence[str]) -> dict[str, Stored]:
        """Stored text and metadata by id (missing ids are left out): how a pipeline reads `_sie_hash`,
        `_sie_model` and `_sie_version` to skip unchanged work."""
        self.schema  # noqa: B018 - opens the collection
        ids = list(dict.fromkeys(ids))
        bad = next((x for x in ids if not is_canonical_uuid(x)), None)
        if bad is not None:
            raise ConnectorError(f"ids: {bad!r} is not a canonical UUID string", field="ids", code="invalid_query")
        found: dict[str, Stored] = {}
        with self._backend("reading"):
            for start in range(0, len(ids), self.batch_size):
                found.update((item.id, item) for item in self._get(ids[start:start + self.batch_size]))
        return found

    def count(self) -> int:
        self.schema  # noqa: B018 - opens the collection
        with self._backend("counting"):
            return self._count()

    def drop(self) -> None:
        """Delete the whole (physical) collection the sink works on; a logical name that pointed to it
        points nowhere afterwards (not part of the write path; for tests, rebuilds and retired collections)."""
        with self._backend("dropping the collection"):
            self._resolve()
            if self._exists():
                self._drop()
            if not self.aliases and self._read_pointer() == self.physical:
                self._write_pointer(None)
        self._schema = None

    def drop_other(self, physical: str) -> None:
        """Drop another physical collection of this logical name (one a reindex retired); never the one the
        sink works on or the one the name points to."""
        if physical in (self.physical, self.pointed()):
            raise ConnectorError(f"sink.collection: {physical!r} is in use; not dropped", field="sink.collection",
                                 code="invalid_query")
        here, self.physical = self.physical, physical
        try:
            with self._backend("dropping a retired collection"):
                if self._exists():
                    self._drop()
        finally:
            self.physical, self._schema = here, None   # reopened (and the hooks' handles with it) on next use

    def close(self) -> None:
        """Release the client; idempotent."""
        if not self.closed:
            self.closed = True
            self._close()

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------------------
    @property
    def schema(self) -> Schema:
        """The collection's schema, reopening the collection on first use."""
        if self._schema is None:
            self.ensure()
        assert self._schema is not None
        return self._schema

    @property
    def batch_size(self) -> int:
        return self.config.effective_batch_size

    @classmethod
    def check_schema(cls, schema: Schema) -> None:
        """Fail with what this database supports when the schema asks for more. A class rule (it reads the
        schema's names, kinds and distances, never dimensions or a connection): `ensure()` applies it, and so
        does pipeline validation, before any database is opened."""
        for name, spec in schema.vectors.items():
            if spec.kind not in cls.stores:
                raise ConnectorError(f"schema.vectors.{name}: {cls.type} cannot store {spec.kind} vectors; it "
                                     f"stores {', '.join(sorted(cls.stores))}", field=f"schema.vectors.{name}",
                                     code="unsupported")

    def _location(self) -> tuple[str, str]:
        for key in ("url", "path", "uri"):
            value = getattr(self.config, key, None)
            if value:
                return f"sink.{key}", value
        return "sink", "in-memory"

    @contextmanager
    def _connecting(self) -> Iterator[None]:
        """Any failure to create the client is a backend error naming where it tried."""
        try:
            yield
        except ConnectorError:
            raise
        except Exception as e:
            field, where = self._location()
            raise ConnectorError(f"{field}: cannot open {self.type} at {where}: {type(e).__name__}: {e}",
                                 field=field, code="backend_error") from e

    @contextmanager
    def _backend(self, action: str) -> Iterator[None]:
        """An unreachable or refusing database is a backend error, not a bug in the caller's request."""
        try:
            yield
        except ConnectorError:
            raise
        except Exception as e:
            if not self._is_backend_failure(e):
                raise
            field, where = self._location()
            raise ConnectorError(f"{field}: {self.type} at {where} failed while {action}: "
                                 f"{type(e).__name__}: {e}", field=field, code="backend_error") from e

    def _write_isolating(self, batch: list[tuple[int, Prepared]], results: list[ItemResult | None]) -> None:
        try:
            refused = self._write([item for _, item in batch])
        except ConnectorError:
            raise
        except Exception as e:  # the databases' own error types vary; classified below
            if self._is_backend_failure(e):
                field, where = self._location()
                raise ConnectorError(f"{field}: {self.type} at {where} failed while writing: "
                                     f"{type(e).__name__}: {e}", field=field, code="backend_error") from e
            if len(batch) == 1:
                index, item = batch[0]
                results[index] = ItemResult(index, item.id, False, f"{self.type} refused it: {type(e).__name__}: {e}")
                return
            half = len(batch) // 2
            self._write_isolating(batch[:half], results)
            self._write_isolating(batch[half:], results)
            return
        for index, item in batch:
            reason = refused.get(item.id)
            results[index] = ItemResult(index, item.id, reason is None, reason)

    def _infer_name(self, query: Any, schema: Schema) -> str:
        shape: tuple[int, ...] = ()
        if isinstance(query, (SparseVector, Mapping)):
            kind = "sparse"
        else:
            try:
                shape = np.shape(query)
            except ValueError:  # ragged rows: check_vector reports it once a name is known
                pass
            kind = "multivector" if len(shape) == 2 else "dense"
        names = schema.names(kind)
        if len(names) > 1 and shape:  # several of that kind: the dimension may still tell
            names = [n for n in names if schema.vectors[n].dim == shape[-1]] or names
        if len(names) == 1:
            return names[0]
        raise ConnectorError(f"vector_name: needed, the schema has {len(names)} {kind} vectors "
                             f"({', '.join(names) or 'none'}); it declares {schema.describe()}",
                             field="vector_name", code="invalid_query")

    def _query_vector(self, value: Any, name: str, schema: Schema) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        spec = schema.vectors.get(name)
        if spec is None:
            raise ConnectorError(f"vector_name: {name!r} is not in the schema ({schema.describe()})",
                                 field="vector_name", code="invalid_query")
        if spec.kind not in self.searches:
            raise ConnectorError(f"vector_name: {self.type} cannot search {spec.kind} vectors ({name!r}); it "
                                 f"searches {', '.join(sorted(self.searches))}", field="vector_name",
                                 code="unsupported")
        if spec.kind == "multivector" and not isinstance(value, SparseVector) and np.ndim(value) == 1:
            value = [value]  # one query vector against token vectors
        checked = check_vector(value, spec, f"query for {name!r}")
        if isinstance(checked, str):
            raise ConnectorError(checked, field="query", code="invalid_query")
        return checked

    # -- database hooks ----------------------------------------------------------------------------
    def _problem(self, record: Prepared) -> str | None:
        """A database-specific reason this (schema-valid) record cannot be written, or None."""
        return None

    def _opened(self, schema: Schema) -> None:  # noqa: B027 - optional hook
        """Called when an existing collection is reopened (cache handles, check compatibility)."""

    def _is_backend_failure(self, error: Exception) -> bool:
        """True when the whole database failed (unreachable, auth refused, overloaded), so a write must not
        be split into ever smaller batches that would all fail the same way."""
        if isinstance(error, (ConnectionError, TimeoutError)):
            return True
        status = getattr(error, "status_code", None)
        return isinstance(status, int) and status in BACKEND_STATUS

    @abstractmethod
    def _exists(self) -> bool: ...

    @abstractmethod
    def _read_schema(self) -> Schema | None: ...

    @abstractmethod
    def _create(self, schema: Schema, generation: str) -> None:
        """Create the collection `self.physical`, keeping the schema and the generation marker with it."""

    @abstractmethod
    def _read_generation(self) -> str | None: ...

    @abstractmethod
    def _write_generation(self, generation: str) -> None: ...

    @abstractmethod
    def _read_pointer(self) -> str | None:
        """The physical collection `self.config.collection` points to (alias or manifest), or None."""

    @abstractmethod
    def _write_pointer(self, physical: str | None) -> None:
        """Point `self.config.collection` at `physical` in one atomic database operation (None: remove)."""

    @abstractmethod
    def _write(self, records: list[Prepared]) -> dict[str, str]:
        """Upsert one batch; return {id: reason} for records the database refused (others are written)."""

    @abstractmethod
    def _delete_ids(self, ids: list[str]) -> None: ...

    @abstractmethod
    def _delete_where(self, where: Node | None) -> None: ...

    @abstractmethod
    def _search(self, request: SearchRequest) -> list[Hit]: ...

    @abstractmethod
    def _get(self, ids: list[str]) -> list[Stored]: ...

    @abstractmethod
    def _count(self) -> int: ...

    @abstractmethod
    def _drop(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...
