"""How the contract maps onto Weaviate (client v4) objects: pure functions, no connection needed.

Collection: the configured name with its first letter upper-cased (Weaviate's class-name rule). Vectors are
`self_provided` named vectors (`Configure.Vectors.self_provided`) on an HNSW index with the schema's
distance; multivectors are `Configure.MultiVectors.self_provided` with MaxSim (`multivector.enabled`).
Weaviate has no user-provided sparse vectors (its keyword search is BM25 over properties).

Object properties:
    _sie_text   text                         the record text (BM25-searchable)
    _sie_meta   text, not indexed            the exact metadata as canonical JSON (what reads return)
    <flattened> bool | number | text(field)  one property per scalar metadata value, for filters
A filter property's name is the metadata path with `.` replaced by `__` and its first letter lower-cased
(Weaviate lower-cases it anyway): `{"source": {"page": 3}}` -> `source__page`. Paths that do not make a
valid property name (`[_A-Za-z][_0-9A-Za-z]*`, not `id`/`_id`/`_additional`) are kept in `_sie_meta` only
and cannot be filtered on. Numbers are always `number` properties, strings use `field` tokenization so
equality is exact. Properties are added to the collection as records first bring them.

The schema is kept in the collection description as `sie-schema:<json>`, followed by
` sie-generation:<marker>` (the sink generation).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter
from weaviate.collections.classes.batch import ErrorObject

from connectors.errors import ConnectorError
from connectors.filters import And, Condition, Node, Or
from connectors.ids import canonical_json
from connectors.metadata import flatten
from connectors.records import Prepared, Schema

TEXT, META = "_sie_text", "_sie_meta"
DESCRIPTION_PREFIX = "sie-schema:"
GENERATION_PREFIX = " sie-generation:"
SEPARATOR = "__"
PROPERTY_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
RESERVED_PROPERTIES = frozenset({"_additional", "_id", "id", TEXT, META})
DISTANCES = {"cosine": VectorDistances.COSINE, "dot": VectorDistances.DOT, "l2": VectorDistances.L2_SQUARED}


def describe(schema: Schema, generation: str | None = None) -> str:
    return DESCRIPTION_PREFIX + schema.to_json() + (GENERATION_PREFIX + generation if generation else "")


def schema_from_description(description: str | None) -> Schema | None:
    if not description or not description.startswith(DESCRIPTION_PREFIX):
        return None
    return Schema.model_validate_json(description[len(DESCRIPTION_PREFIX):].partition(GENERATION_PREFIX)[0])


def generation_from_description(description: str | None) -> str | None:
    if not description or not description.startswith(DESCRIPTION_PREFIX):
        return None
    return description.partition(GENERATION_PREFIX)[2] or None


def vector_config(schema: Schema) -> list[Any]:
    """`vector_config=` for `client.collections.create`: one self-provided named vector per schema vector."""
    configs = []
    for name, spec in schema.vectors.items():
        index = Configure.VectorIndex.hnsw(distance_metric=DISTANCES[spec.distance])
        if spec.kind == "multivector":
            maxsim = Configure.VectorIndex.MultiVector.multi_vector()
            configs.append(Configure.MultiVectors.self_provided(name=name, vector_index_config=index,
                                                                multi_vector_config=maxsim))
        else:
            configs.append(Configure.Vectors.self_provided(name=name, vector_index_config=index))
    return configs


def base_properties() -> list[Property]:
    return [Property(name=TEXT, data_type=DataType.TEXT),
            Property(name=META, data_type=DataType.TEXT, index_filterable=False, index_searchable=False)]


def property_name(path: str) -> str | None:
    """The filter property for a dotted metadata path, or None when Weaviate cannot name it."""
    name = path.replace(".", SEPARATOR)
    name = name[:1].lower() + name[1:]
    if not PROPERTY_NAME.match(name) or name in RESERVED_PROPERTIES:
        return None
    return name


def filter_properties(metadata: dict[str, Any]) -> dict[str, str | float | bool]:
    """Scalar metadata values under their filter property names (numbers as float)."""
    scalars, _lists = flatten(metadata, ".")
    out: dict[str, str | float | bool] = {}
    for path, value in scalars.items():
        name = property_name(path)
        if name is not None:
            out[name] = value if isinstance(value, (bool, str)) else float(value)
    return out


def data_type(value: Any) -> DataType:
    if isinstance(value, bool):
        return DataType.BOOL
    return DataType.TEXT if isinstance(value, str) else DataType.NUMBER


def new_properties(objects: Iterable[DataObject], existing: Iterable[str]) -> list[Property]:
    """Properties the objects bring that the collection lacks (the first value seen sets the type)."""
    known, out = set(existing), []
    for obj in objects:
        for name, value in (obj.properties or {}).items():
            if name not in known:
                known.add(name)
                kind = data_type(value)
                out.append(Property(name=name, data_type=kind,
                                    tokenization=Tokenization.FIELD if kind == DataType.TEXT else None))
    return out


def to_data_object(record: Prepared) -> DataObject:
    properties: dict[str, Any] = {**filter_properties(record.metadata), TEXT: record.text,
                                  META: canonical_json(record.metadata)}
    vectors = {name: value.tolist() for name, value in record.vectors.items()}  # sparse never reaches Weaviate
    return DataObject(properties=properties, uuid=record.id, vector=vectors)


def failures_from(errors: Iterable[ErrorObject]) -> dict[str, str]:
    """{record id: Weaviate's message} for the objects a batch reported as failed (a 200 can hide them)."""
    out: dict[str, str] = {}
    for error in errors:
        uid = error.original_uuid or error.object_.uuid
        out[str(uid)] = error.message
    return out


def to_filter(node: Node) -> Any:
    """The filter as a Weaviate `Filter` over the flattened filter properties."""
    if isinstance(node, Condition):
        name = property_name(node.field)
        if name is None:
            raise ConnectorError(f"where.{node.field}: Weaviate cannot filter on this path (property names must "
                                 f"match {PROPERTY_NAME.pattern})", field=f"where.{node.field}", code="invalid_filter")
        target = Filter.by_property(name)
        value = _value(node.value)
        if node.op == "$in":
            return target.contains_any(value)
        if node.op == "$nin":
            return target.contains_none(value)
        method = {"$eq": "equal", "$ne": "not_equal", "$gt": "greater_than", "$gte": "greater_or_equal",
                  "$lt": "less_than", "$lte": "less_or_equal"}[node.op]
        return getattr(target, method)(value)
    parts = [to_filter(part) for part in node.parts]
    return Filter.all_of(parts) if isinstance(node, And) else Filter.any_of(parts)


def prune_unknown(node: Node | None, known: set[str]) -> Node | None:
    """`node` with conditions on unknown properties treated as matching nothing; None if nothing can match.

    Unmappable paths are left in place so that `to_filter` reports them.
    """
    if node is None:
        return None
    if isinstance(node, Condition):
        name = property_name(node.field)
        return node if name is None or name in known else None
    parts = [prune_unknown(part, known) for part in node.parts]
    if isinstance(node, And):
        return None if any(p is None for p in parts) else node
    kept = tuple(p for p in parts if p is not None)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else Or(kept)


def _value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_value(v) for v in value]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def score(distance: float, metric: str, kind: str) -> float:
    """Weaviate distances: cosine 1-cos, dot -dot, l2-squared; multivectors report minus the MaxSim sum."""
    if metric == "cosine" and kind == "dense":
        return 1.0 - float(distance)
    return -float(distance)
