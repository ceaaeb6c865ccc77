"""What a sink stores: a schema of named vectors, and records of id + text + metadata + named vectors.

A schema declares each vector by name with its kind, dimension and distance:

    Schema.parse({"vectors": {"dense": {"kind": "dense", "dim": 384, "distance": "cosine"},
                              "splade": {"kind": "sparse", "idf": True},
                              "colbert": {"kind": "multivector", "dim": 128}}})

A record carries every vector its schema declares: a dense vector is a 1-D sequence of `dim` floats, a
multivector a 2-D sequence of rows of `dim` floats (at least one row), a sparse vector a `SparseVector`
(or a `{index: weight}` dict). `prepare` checks one record against a schema and returns it normalized
(float32 arrays, sorted sparse indices), or the reason it cannot be written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connectors.errors import ConnectorError
from connectors.ids import canonical_json, content_hash, is_canonical_uuid, record_id
from connectors.metadata import HASH, KEY, MODEL, VERSION, metadata_problem

Kind = Literal["dense", "sparse", "multivector"]
Distance = Literal["cosine", "dot", "l2"]
VECTOR_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
#: Column / property names the sinks use themselves.
RESERVED_VECTOR_NAMES = frozenset({"id", "text", "metadata", "vector"})
MAX_SPARSE_INDEX = 2**32 - 1


@dataclass(frozen=True, slots=True)
class SparseVector:
    """Non-zero weights by vocabulary index (e.g. a SPLADE or BM25 vector)."""

    indices: Sequence[int] | np.ndarray
    values: Sequence[float] | np.ndarray

    @classmethod
    def from_dict(cls, weights: Mapping[int, float]) -> SparseVector:
        return cls(list(weights.keys()), list(weights.values()))

    def to_dict(self) -> dict[int, float]:
        return {int(i): float(v) for i, v in zip(self.indices, self.values, strict=True)}


Vector = Union[Sequence[float], np.ndarray, SparseVector, Sequence[Sequence[float]]]  # noqa: UP007


@dataclass(slots=True)
class Record:
    """One item to store. `id` must be a canonical UUID string: build records with `make_record`."""

    id: str
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    vectors: dict[str, Vector] = field(default_factory=dict)


def make_record(key: Any, text: str, vectors: dict[str, Vector], metadata: dict[str, Any] | None = None, *,
                model: str | None = None, version: str | None = None, hash: str | None = None) -> Record:
    """A record whose id is `record_id(key)`, with the reserved keys filled in.

    `_sie_hash` defaults to the content hash of `{"text": text, "metadata": metadata}`; pass `hash` to hash
    something else (e.g. the source bytes). `_sie_model` / `_sie_version` are set when given.
    """
    user = dict(metadata or {})
    meta: dict[str, Any] = {**user, KEY: canonical_json(key),
                            HASH: hash or content_hash({"text": text, "metadata": user})}
    if model is not None:
        meta[MODEL] = model
    if version is not None:
        meta[VERSION] = version
    return Record(id=record_id(key), text=text, metadata=meta, vectors=dict(vectors))


class VectorSpec(BaseModel):
    """One named vector: dense and multivector need `dim`; sparse takes `idf` and scores by dot product."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind = "dense"
    dim: int | None = Field(None, gt=0, le=65536)
    distance: Distance = "cosine"
    idf: bool = False

    @model_validator(mode="before")
    @classmethod
    def _default_distance(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("distance") is None:
            data = {**data, "distance": "dot" if data.get("kind") == "sparse" else "cosine"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> VectorSpec:
        if self.kind == "sparse":
            if self.dim is not None:
                raise ValueError("sparse vectors take no dim (their indices are vocabulary ids)")
            if self.distance != "dot":
                raise ValueError(f"sparse vectors score by dot product; distance {self.distance!r} is not possible")
            return self
        if self.dim is None:
            raise ValueError(f"{self.kind} vectors need dim")
        if self.idf:
            raise ValueError("idf applies to sparse vectors only")
        if self.kind == "multivector" and self.distance == "l2":
            raise ValueError("multivectors are compared by MaxSim over cosine or dot; l2 is not possible")
        return self


class Schema(BaseModel):
    """The named vectors of a collection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vectors: dict[str, VectorSpec] = Field(min_length=1)

    @field_validator("vectors")
    @classmethod
    def _names(cls, vectors: dict[str, VectorSpec]) -> dict[str, VectorSpec]:
        for name in vectors:
            if not VECTOR_NAME.match(name) or name in RESERVED_VECTOR_NAMES:
                raise ValueError(f"vector name {name!r} must match {VECTOR_NAME.pattern} and not be one of "
                                 f"{', '.join(sorted(RESERVED_VECTOR_NAMES))}")
        return vectors

    @classmethod
    def parse(cls, value: Schema | Mapping[str, Any]) -> Schema:
        """A Schema from itself or a YAML/JSON dict; errors name the offending key."""
        if isinstance(value, Schema):
            return value
        try:
            return cls.model_validate(value)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "schema"
            raise ConnectorError(f"schema.{where}: {err['msg']} (got {err.get('input')!r})",
                                 field=f"schema.{where}", code="invalid_schema") from None

    def to_json(self) -> str:
        return canonical_json(self.model_dump(mode="json"))

    def names(self, kind: str | None = None) -> list[str]:
        return [n for n, s in self.vectors.items() if kind is None or s.kind == kind]

    def describe(self) -> str:
        return ", ".join(f"{n} ({s.kind}{'' if s.dim is None else f', dim {s.dim}'})" for n, s in self.vectors.items())


@dataclass(frozen=True, slots=True)
class Prepared:
    """A record checked against its schema: float32 arrays, sparse as sorted (uint32 indices, float32 values)."""

    id: str
    text: str
    metadata: dict[str, Any]
    vectors: dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]]


def prepare(record: Record, schema: Schema) -> Prepared | str:
    """The record normalized for writing, or why it cannot be written (one line, naming the field)."""
    if not isinstance(record, Record):
        return f"expected a Record, got {type(record).__name__}"
    if not is_canonical_uuid(record.id):
        return f"id {record.id!r} is not a canonical UUID string (build ids with connectors.record_id)"
    if not isinstance(record.text, str):
        return f"text must be a str, got {type(record.text).__name__}"
    problem = metadata_problem(record.metadata)
    if problem:
        return problem
    given, declared = set(record.vectors), set(schema.vectors)
    if given - declared:
        return f"unknown vector {sorted(given - declared)[0]!r}; the schema declares {', '.join(sorted(declared))}"
    if declared - given:
        return f"missing vector {sorted(declared - given)[0]!r}; every record carries {', '.join(sorted(declared))}"
    vectors: dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]] = {}
    for name, spec in schema.vectors.items():
        value = check_vector(record.vectors[name], spec, f"vector {name!r}")
        if isinstance(value, str):
            return value
        vectors[name] = value
    return Prepared(record.id, record.text, record.metadata, vectors)


def check_vector(value: Any, spec: VectorSpec, label: str) -> np.ndarray | tuple[np.ndarray, np.ndarray] | str:
    """One vector normalized to `spec`, or the reason it does not fit (e.g. its dimension)."""
    if spec.kind == "sparse":
        return _check_sparse(value, label)
    if isinstance(value, SparseVector):
        return f"{label}: got a sparse vector, the schema declares {spec.kind}"
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as e:
        return f"{label}: not a numeric array ({e})"
    want = 1 if spec.kind == "dense" else 2
    if array.ndim != want:
        return f"{label}: {spec.kind} vectors are {want}-D, got shape {tuple(array.shape)}"
    if array.shape[-1] != spec.dim:
        return f"{label}: dimension {array.shape[-1]}, the schema expects {spec.dim}"
    if spec.kind == "multivector" and array.shape[0] == 0:
        return f"{label}: a multivector needs at least one row"
    if not np.isfinite(array).all():
        return f"{label}: contains NaN or infinity"
    return array


def _check_sparse(value: Any, label: str) -> tuple[np.ndarray, np.ndarray] | str:
    if isinstance(value, Mapping):
        value = SparseVector.from_dict(value)
    if not isinstance(value, SparseVector):
        return f"{label}: sparse vectors are SparseVector(indices, values) or {{index: weight}}, " \
               f"got {type(value).__name__}"
    try:
        indices = np.asarray(value.indices, dtype=np.int64).reshape(-1)
        values = np.asarray(value.values, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as e:
        return f"{label}: indices must be integers and values numbers ({e})"
    if len(indices) != len(values):
        return f"{label}: {len(indices)} indices but {len(values)} values"
    if len(indices) and (indices.min() < 0 or indices.max() > MAX_SPARSE_INDEX):
        return f"{label}: indices must lie in 0..{MAX_SPARSE_INDEX}"
    if len(np.unique(indices)) != len(indices):
        return f"{label}: indices repeat"
    if not np.isfinite(values).all():
        return f"{label}: contains NaN or infinity"
    order = np.argsort(indices)
    return indices[order].astype(np.uint32), values[order]
