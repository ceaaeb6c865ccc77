"""Dotted paths into nested metadata (`entities.person`, `source.path`) and a local evaluator of the
connectors' `where` language, so `filter`/`map` steps are declarative: no expression is ever evaluated."""

from __future__ import annotations

from typing import Any

from connectors.filters import And, Condition, Node, Or

MISSING = object()


def get_path(data: dict[str, Any], path: str, default: Any = None) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def pop_path(data: dict[str, Any], path: str) -> Any:
    """Remove and return the value at `path` (a missing path is not an error); prunes emptied dicts."""
    *parents, leaf = path.split(".")
    trail = [data]
    for part in parents:
        child = trail[-1].get(part)
        if not isinstance(child, dict):
            return MISSING
        trail.append(child)
    value = trail[-1].pop(leaf, MISSING)
    for parent, part in zip(reversed(trail[:-1]), reversed(parents)):
        if parent.get(part) == {}:
            del parent[part]
    return value


def matches(node: Node | None, metadata: dict[str, Any]) -> bool:
    """True when `metadata` satisfies the parsed `where` filter. A missing field matches nothing, not even
    $ne / $nin (the rule most sinks follow); a list value matches when any element does (as Qdrant does)."""
    if node is None:
        return True
    if isinstance(node, And):
        return all(matches(part, metadata) for part in node.parts)
    if isinstance(node, Or):
        return any(matches(part, metadata) for part in node.parts)
    value = get_path(metadata, node.field, MISSING)
    if value is MISSING or value is None:
        return False
    values = value if isinstance(value, list) else [value]
    return any(_compare(node, v) for v in values)


def _compare(cond: Condition, value: Any) -> bool:
    op, want = cond.op, cond.value
    if op in ("$in", "$nin"):
        found = any(_same(value, w) for w in want)
        return found if op == "$in" else not found
    if op == "$eq":
        return _same(value, want)
    if op == "$ne":
        return not _same(value, want)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False  # ranges compare numbers only
    return {"$gt": value > want, "$gte": value >= want, "$lt": value < want, "$lte": value <= want}[op]


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; in the where language a bool is never a number.
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b
