"""LanceDB sink: an embedded table under `uri` (a local folder or object-store URI), or LanceDB Cloud.

    {"type": "lancedb", "collection": "docs", "uri": "/data/lance"}
    {"type": "lancedb", "collection": "docs", "uri": "db://my-project", "api_key": "${LANCEDB_API_KEY}"}

Table layout (an explicit Arrow schema):
    id        string, not null            the record id; upserts are merge_insert("id")
    text      string
    metadata  JSON (lance.json)           the metadata as is; filters read it with json_get_* functions
    <dense>   fixed_size_list<float32, dim>
    <multi>   list<fixed_size_list<float32, dim>>
    <sparse>  <name>_indices list<uint32>, <name>_values list<float32>
The schema the table was created with is kept in the Arrow schema metadata (`sie_schema`), the sink
generation in the `id` field's metadata (`sie_generation`: field metadata can be replaced in place).
Logical names that point elsewhere (a blue/green reindex) are rows (logical, physical) of the table
`sie_collections` in the same database; it has no vectors, so no search or count ever sees it.

Upsert is `merge_insert("id").when_matched_update_all().when_not_matched_insert_all()`. Search is exact
(a flat scan) until someone builds an ANN index on the table; distances are chosen per query. LanceDB
searches dense and multivector columns (multivectors: cosine only); sparse vectors are stored but LanceDB
cannot search them, which `search` says. `where` filters become SQL over the JSON column.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import SecretStr

from connectors.base import Hit, SearchRequest, Sink, Stored
from connectors.config import MANIFEST, SinkConfig
from connectors.errors import ConnectorError
from connectors.filters import And, Condition, Node, type_class
from connectors.ids import canonical_json
from connectors.records import Prepared, Schema

SCHEMA_KEY = b"sie_schema"
GENERATION_KEY = b"sie_generation"
DELETE_CHUNK = 1000


class LanceDBConfig(SinkConfig):
    default_batch_size: ClassVar[int] = 1000

    type: Literal["lancedb"]
    uri: str
    api_key: SecretStr | None = None
    region: str | None = None


class LanceDBSink(Sink):
    type = "lancedb"
    config_class = LanceDBConfig
    stores = frozenset({"dense", "sparse", "multivector"})
    searches = frozenset({"dense", "multivector"})

    def __init__(self, config: LanceDBConfig) -> None:
        super().__init__(config)
        import lancedb

        options: dict[str, Any] = {}
        if config.api_key:
            options["api_key"] = self.config.secret(config.api_key)
        if config.region:
            options["region"] = config.region
        # Interval 0: every read checks for the latest table version, so a long-lived sink sees other writers.
        with self._connecting():
            self.db = lancedb.connect(config.uri, read_consistency_interval=timedelta(0), **options)
        self._table: Any = None
        self._manifest: tuple[Any, int, str | None] | None = None   # (table, version read, pointer)

    @classmethod
    def check_schema(cls, schema: Schema) -> None:
        super().check_schema(schema)
        columns: dict[str, str] = {}
        for name, spec in schema.vectors.items():
            if spec.kind == "multivector" and spec.distance != "cosine":
                raise ConnectorError(f"schema.vectors.{name}: LanceDB compares multivectors by cosine only, "
                                     f"got {spec.distance!r}", field=f"schema.vectors.{name}", code="unsupported")
            for column in ([f"{name}_indices", f"{name}_values"] if spec.kind == "sparse" else [name]):
                if column in columns:
                    raise ConnectorError(f"schema.vectors.{name}: column {column!r} is also used by vector "
                                         f"{columns[column]!r}", field=f"schema.vectors.{name}", code="invalid_schema")
                columns[column] = name

    # -- hooks -------------------------------------------------------------------------------------
    def _exists(self) -> bool:
        try:
            self._table = self.db.open_table(self.physical)
        except ValueError:
            return False
        return True

    def _read_schema(self) -> Schema | None:
        stored = (self._table.schema.metadata or {}).get(SCHEMA_KEY)
        return Schema.model_validate_json(stored) if stored else None

    def _create(self, schema: Schema, generation: str) -> None:
        self._table = self.db.create_table(self.physical, schema=arrow_schema(schema), exist_ok=True)
        self._write_generation(generation)

    def _read_generation(self) -> str | None:
        marker = (self._table.schema.field("id").metadata or {}).get(GENERATION_KEY)
        return marker.decode() if marker else None

    def _write_generation(self, generation: str) -> None:
        self._table.replace_field_metadata("id", {GENERATION_KEY.decode(): generation})

    def _read_pointer(self) -> str | None:
        """Readers follow the pointer before every query: the manifest is re-read only when its table version
        moved (~3 ms for the version check, against ~15 ms for a filtered read)."""
        if self._manifest is None:
            try:
                table = self.db.open_table(MANIFEST)
            except ValueError:
                return None
            self._manifest = (table, -1, None)
        table, seen, physical = self._manifest
        version = table.version
        if version != seen:
            rows = table.to_arrow().to_pylist()   # one small row per logical name
            physical = next((r["physical"] for r in rows if r["logical"] == self.config.collection), None)
            self._manifest = (table, version, physical)
        return physical

    def _write_pointer(self, physical: str | None) -> None:
        import pyarrow as pa

        layout = pa.schema([pa.field("logical", pa.string(), nullable=False), pa.field("physical", pa.string())])
        manifest = self.db.create_table(MANIFEST, schema=layout, exist_ok=True)
        if physical is None:
            manifest.delete(f"logical = {_literal(self.config.collection)}")
            return
        row = pa.table({"logical": [self.config.collection], "physical": [physical]}, schema=layout)
        manifest.merge_insert("logical").when_matched_update_all().when_not_matched_insert_all().execute(row)

    def _write(self, records: list[Prepared]) -> dict[str, str]:
        data = arrow_table(records, self.schema)
        self._table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)
        return {}

    def _delete_ids(self, ids: list[str]) -> None:
        for start in range(0, len(ids), DELETE_CHUNK):
            self._table.delete("id IN (" + ", ".join(_literal(i) for i in ids[start:start + DELETE_CHUNK]) + ")")

    def _delete_where(self, where: Node | None) -> None:
        self._run(lambda: self._table.delete(to_sql(where)), where)

    def _search(self, request: SearchRequest) -> list[Hit]:
        (name, vector), = request.vectors.items()
        spec = self.schema.vectors[name]
        query = self._table.search(vector, vector_column_name=name, query_type="vector") \
            .distance_type(spec.distance).limit(request.limit).select(["id", "text", "metadata", "_distance"])
        if request.where is not None:
            query = query.where(to_sql(request.where), prefilter=True)
        rows = self._run(lambda: query.to_arrow().to_pylist(), request.where)
        rows_per_query = len(vector) if spec.kind == "multivector" else 1
        return [Hit(id=row["id"], score=_score(row["_distance"], spec.distance, rows_per_query), text=row["text"] or "",
                    metadata=_load(row["metadata"])) for row in rows]

    def _get(self, ids: list[str]) -> list[Stored]:
        where = "id IN (" + ", ".join(_literal(i) for i in ids) + ")"
        rows = self._table.search().where(where).select(["id", "text", "metadata"]).limit(len(ids)).to_arrow()
        return [Stored(row["id"], row["text"] or "", _load(row["metadata"])) for row in rows.to_pylist()]

    def _count(self) -> int:
        return self._table.count_rows()

    def _drop(self) -> None:
        self.db.drop_table(self.physical)
        self._table = None

    def _close(self) -> None:
        self._table = self._manifest = None

    def _run(self, call: Any, where: Node | None) -> Any:
        try:
            return call()
        except (RuntimeError, ValueError, OSError) as e:
            if where is None:
                raise
            raise ConnectorError(f"where: LanceDB could not apply the filter {to_sql(where)!r}: {e}. A field must "
                                 "hold the same type (str, number or bool) in every record it is filtered in",
                                 field="where", code="invalid_filter") from e


def _score(distance: float, metric: str, query_rows: int) -> float:
    """LanceDB distances: cosine 1-cos, dot 1-dot, l2 squared L2; multivector cosine: rows - MaxSim."""
    if metric == "l2":
        return -float(distance)
    return float(query_rows) - float(distance)


def _load(value: Any) -> dict[str, Any]:
    import json

    if value is None:
        return {}
    return json.loads(value if isinstance(value, str) else bytes(value).decode("utf-8"))


def arrow_schema(schema: Schema) -> Any:
    import pyarrow as pa

    fields = [pa.field("id", pa.string(), nullable=False), pa.field("text", pa.string()),
              pa.field("metadata", pa.json_(pa.utf8()))]
    for name, spec in schema.vectors.items():
        if spec.kind == "dense":
            fields.append(pa.field(name, pa.list_(pa.float32(), spec.dim)))
        elif spec.kind == "multivector":
            fields.append(pa.field(name, pa.list_(pa.list_(pa.float32(), spec.dim))))
        else:
            fields += [pa.field(f"{name}_indices", pa.list_(pa.uint32())),
                       pa.field(f"{name}_values", pa.list_(pa.float32()))]
    return pa.schema(fields, metadata={SCHEMA_KEY: schema.to_json().encode()})


def arrow_table(records: list[Prepared], schema: Schema) -> Any:
    """The batch as an Arrow table in the layout above (vectors copied once, as float32 buffers)."""
    import pyarrow as pa

    columns: dict[str, Any] = {
        "id": pa.array([r.id for r in records], pa.string()),
        "text": pa.array([r.text for r in records], pa.string()),
        "metadata": pa.array([canonical_json(r.metadata) for r in records], pa.json_(pa.utf8())),
    }
    for name, spec in schema.vectors.items():
        values = [r.vectors[name] for r in records]
        if spec.kind == "dense":
            columns[name] = pa.FixedSizeListArray.from_arrays(np.concatenate(values), spec.dim)
        elif spec.kind == "multivector":
            rows = pa.FixedSizeListArray.from_arrays(np.concatenate(values).reshape(-1), spec.dim)
            columns[name] = pa.ListArray.from_arrays(_offsets([len(v) for v in values]), rows)
        else:
            offsets = _offsets([len(i) for i, _ in values])
            columns[f"{name}_indices"] = pa.ListArray.from_arrays(
                offsets, pa.array(np.concatenate([i for i, _ in values]).astype(np.uint32), pa.uint32()))
            columns[f"{name}_values"] = pa.ListArray.from_arrays(
                offsets, pa.array(np.concatenate([v for _, v in values]).astype(np.float32), pa.float32()))
    target = arrow_schema(schema)
    return pa.Table.from_arrays([columns[f.name] for f in target], schema=target)


def _offsets(lengths: list[int]) -> Any:
    import pyarrow as pa

    return pa.array(np.concatenate([[0], np.cumsum(lengths, dtype=np.int32)]).astype(np.int32), pa.int32())


def to_sql(node: Node | None) -> str:
    """The filter as a LanceDB SQL predicate over the JSON `metadata` column."""
    if node is None:
        return "TRUE"
    if isinstance(node, Condition):
        getter = _getter(node.field, type_class(node.value))
        if node.op in ("$in", "$nin"):
            items = ", ".join(_literal(v) for v in node.value)
            return f"{getter} {'IN' if node.op == '$in' else 'NOT IN'} ({items})"
        sql_op = {"$eq": "=", "$ne": "<>", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[node.op]
        return f"{getter} {sql_op} {_literal(node.value)}"
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(to_sql(part) for part in node.parts) + ")"


def _getter(path: str, kind: str) -> str:
    *parents, leaf = path.split(".")
    inner = "metadata"
    for parent in parents:
        inner = f"json_get({inner}, {_literal(parent)})"
    function = {"str": "json_get_string", "number": "json_get_float", "bool": "json_get_bool"}[kind]
    return f"{function}({inner}, {_literal(leaf)})"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return "'" + str(value).replace("'", "''") + "'"
