"""One small declarative filter language (`where`) for every sink, parsed once, translated per database.

    {"lang": "en"}                                   equality
    {"year": {"$gte": 2020, "$lt": 2024}}            several operators on one field: all must hold
    {"lang": {"$in": ["en", "de"]}}                  $in / $nin: a non-empty list of scalars of one type
    {"source.page": {"$ne": 3}}                      dotted names reach into nested metadata dicts
    {"$and": [{...}, {...}]}, {"$or": [{...}, ...]}  several keys in one dict are an implicit $and

Operators: $eq $ne $gt $gte $lt $lte $in $nin. Values are str, int, float or bool; $gt/$gte/$lt/$lte take
numbers only. Filters apply to scalar metadata values; lists are stored but not filterable everywhere.
A field that holds different types in different records compares as each database does (Chroma and Qdrant
skip mismatches; LanceDB fails the query). How a record without the field fares under $ne / $nin also
follows the database (Qdrant matches it; Chroma, Weaviate and LanceDB do not): do not rely on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from connectors.errors import ConnectorError

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
RANGE_OPERATORS = ("$gt", "$gte", "$lt", "$lte")
LOGICAL = ("$and", "$or")


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str  # one of OPERATORS
    value: Any  # a scalar, or a tuple of scalars for $in / $nin


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Node, ...]


Node = Union[Condition, And, Or]  # noqa: UP007


def parse_where(where: Mapping[str, Any] | None) -> Node | None:
    """The parsed filter, or None for no filter. Errors name the path inside `where`."""
    if where is None:
        return None
    return _parse(where, "where")


def fields(node: Node | None) -> list[str]:
    """Every field a filter mentions (for sinks that must map field names)."""
    if node is None:
        return []
    if isinstance(node, Condition):
        return [node.field]
    return [f for part in node.parts for f in fields(part)]


def _fail(path: str, message: str) -> ConnectorError:
    return ConnectorError(f"{path}: {message}", field=path, code="invalid_filter")


def _parse(where: Any, path: str) -> Node:
    if not isinstance(where, Mapping) or not where:
        raise _fail(path, f"a filter is a non-empty dict, got {where!r}")
    parts: list[Node] = []
    for key, value in where.items():
        if not isinstance(key, str):
            raise _fail(path, f"keys are field names or $and/$or, got {key!r}")
        sub = f"{path}.{key}"
        if key in LOGICAL:
            if not isinstance(value, (list, tuple)) or not value:
                raise _fail(sub, f"{key} takes a non-empty list of filters, got {value!r}")
            children = tuple(_parse(item, f"{sub}[{i}]") for i, item in enumerate(value))
            parts.append(children[0] if len(children) == 1 else (And(children) if key == "$and" else Or(children)))
        elif key.startswith("$"):
            raise _fail(sub, f"unknown operator {key!r} at this level; use a field name, $and or $or")
        else:
            _check_field(key, sub)
            parts.extend(_conditions(key, value, sub))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _check_field(name: str, path: str) -> None:
    if not name or any(not segment for segment in name.split(".")):
        raise _fail(path, f"field name {name!r} is empty or has an empty dotted segment")


def _conditions(name: str, value: Any, path: str) -> list[Condition]:
    if not isinstance(value, Mapping):
        return [Condition(name, "$eq", _scalar(value, path))]
    if not value:
        raise _fail(path, "an operator dict needs at least one operator")
    out = []
    for op, operand in value.items():
        sub = f"{path}.{op}"
        if op not in OPERATORS:
            raise _fail(sub, f"unknown operator {op!r}; valid operators: {', '.join(OPERATORS)}")
        if op in ("$in", "$nin"):
            if not isinstance(operand, (list, tuple)) or not operand:
                raise _fail(sub, f"{op} takes a non-empty list, got {operand!r}")
            items = tuple(_scalar(item, f"{sub}[{i}]") for i, item in enumerate(operand))
            if len({_type_class(item) for item in items}) > 1:
                raise _fail(sub, f"{op} values must share one type (str, number or bool), got {list(items)!r}")
            out.append(Condition(name, op, items))
        else:
            scalar = _scalar(operand, sub)
            if op in RANGE_OPERATORS and _type_class(scalar) != "number":
                raise _fail(sub, f"{op} compares numbers, got {operand!r}")
            out.append(Condition(name, op, scalar))
    return out


def _scalar(value: Any, path: str) -> str | int | float | bool:
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(path, f"{value} is not a finite number")
    if isinstance(value, (str, int, float, bool)):
        return value
    raise _fail(path, f"values are str, int, float or bool, got {value!r}")


def _type_class(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else "str"


def type_class(value: Any) -> str:
    """'bool', 'number' or 'str' (a tuple from $in/$nin reports its first item's class)."""
    return _type_class(value[0] if isinstance(value, tuple) else value)
