"""Record metadata: what is allowed, the reserved keys, and the flattening rule for scalar-only stores.

Metadata is JSON-like: a dict with `str` keys whose values are None, bool, int, finite float, str, lists of
those, or dicts of those (any depth up to 32). Keys may not contain `.` (a dotted name is how filters reach
into nested dicts: `{"source.page": 3}`) and may not start with `_sie_` unless they are one of the reserved
keys below, which `connectors.records.make_record` fills in:

    _sie_key      canonical JSON of the natural key the id was made from
    _sie_hash     content hash (connectors.ids.content_hash)
    _sie_model    name of the model that made the vectors
    _sie_version  pipeline version that wrote the record

Flattening (Chroma metadata, Weaviate properties), so that every value is a scalar:
  * nested dicts become joined keys: `{"source": {"page": 3}}` -> `{"source.page": 3}` (separator `.` for
    Chroma, `__` for Weaviate);
  * lists become their canonical JSON string (`[1, 2]` -> `"[1,2]"`), and the flattened keys that hold such
    strings are listed, as a JSON string, under `_sie_json` so reading back restores the lists;
  * None values and empty dicts are dropped (Chroma cannot filter on them, Weaviate has no null property).
`unflatten` reverses this exactly for metadata that contained no None and no empty dict.
"""

from __future__ import annotations

import json
import math
from typing import Any

from connectors.ids import canonical_json

KEY, HASH, MODEL, VERSION = "_sie_key", "_sie_hash", "_sie_model", "_sie_version"
RESERVED_KEYS = (KEY, HASH, MODEL, VERSION)
RESERVED_PREFIX = "_sie_"
#: Written by sinks, never by callers: flattened keys holding JSON-encoded lists.
JSON_KEYS = "_sie_json"
MAX_DEPTH = 32

Scalar = str | int | float | bool


def metadata_problem(metadata: object) -> str | None:
    """Why `metadata` is not valid record metadata, or None when it is."""
    if not isinstance(metadata, dict):
        return f"metadata must be a dict, got {type(metadata).__name__}"
    for key in metadata:
        if isinstance(key, str) and key.startswith(RESERVED_PREFIX) and key not in RESERVED_KEYS:
            return (f"metadata key {key!r} uses the reserved prefix {RESERVED_PREFIX!r}; "
                    f"allowed reserved keys: {', '.join(RESERVED_KEYS)}")
    return _value_problem(metadata, "metadata", 0)


def _value_problem(value: Any, path: str, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return f"{path}: nested deeper than {MAX_DEPTH} levels"
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: {value} is not a finite number"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                return f"{path}: keys must be non-empty strings, got {key!r}"
            if "." in key:
                return f"{path}: key {key!r} contains '.', which filters use to reach into nested dicts"
            problem = _value_problem(item, f"{path}.{key}", depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = _value_problem(item, f"{path}[{i}]", depth + 1)
            if problem:
                return problem
        return None
    return f"{path}: {type(value).__name__} is not JSON (use str, int, float, bool, None, list or dict)"


def flatten(metadata: dict[str, Any], sep: str = ".") -> tuple[dict[str, Scalar], dict[str, str]]:
    """(scalars, lists): scalar values under joined keys, and lists as canonical JSON strings."""
    scalars: dict[str, Scalar] = {}
    lists: dict[str, str] = {}

    def walk(value: Any, prefix: str) -> None:
        for key, item in value.items():
            name = f"{prefix}{sep}{key}" if prefix else key
            if isinstance(item, dict):
                walk(item, name)
            elif isinstance(item, (list, tuple)):
                lists[name] = canonical_json(list(item))
            elif item is not None:
                scalars[name] = item

    walk(metadata, "")
    return scalars, lists


def flatten_for_store(metadata: dict[str, Any], sep: str = ".") -> dict[str, Scalar]:
    """One scalar dict: flattened scalars, lists as JSON strings, and `_sie_json` naming those keys."""
    scalars, lists = flatten(metadata, sep)
    flat: dict[str, Scalar] = {**scalars, **lists}
    if lists:
        flat[JSON_KEYS] = canonical_json(sorted(lists))
    return flat


def unflatten(flat: dict[str, Any] | None, sep: str = ".") -> dict[str, Any]:
    """The nested metadata `flatten_for_store` was given (minus None values and empty dicts)."""
    if not flat:
        return {}
    json_keys = set(json.loads(flat[JSON_KEYS])) if JSON_KEYS in flat else set()
    out: dict[str, Any] = {}
    for name, value in flat.items():
        if name == JSON_KEYS:
            continue
        if name in json_keys:
            value = json.loads(value)
        parts = name.split(sep)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out
