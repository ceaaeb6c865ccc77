"""Record ids: UUIDv5 of the canonical JSON of a record's natural key.

Qdrant and Weaviate accept only UUIDs (or integers) as ids, and building an id from a dict whose key order
changes between runs is how duplicate documents appear. So an id is

    uuid5(SIE_NAMESPACE, canonical_json(natural_key))

where canonical JSON means sorted keys, compact separators (`,` and `:`), UTF-8 kept as is
(`ensure_ascii=False`) and no NaN/Infinity. `{"doc": "a.pdf", "chunk": 3}` and `{"chunk": 3, "doc": "a.pdf"}`
give the same id; `3` and `3.0` do not (JSON tells them apart), so keep keys to strings and integers.

`SIE_NAMESPACE` is fixed forever: changing it would re-key every collection ever written.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from connectors.errors import ConnectorError

#: uuid5(NAMESPACE_URL, "sie:connectors:record-id"), written out so that it can never drift.
SIE_NAMESPACE = uuid.UUID("448d63a2-8720-584b-a919-3a6189aa76d0")


def canonical_json(value: Any) -> str:
    """Sorted keys, compact separators, UTF-8 as is; fails for values JSON cannot represent exactly."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ConnectorError(f"natural key must be JSON (str, int, float, bool, None, list, dict with str keys); "
                             f"got {value!r}: {e}", field="key", code="invalid_query") from None


def record_id(natural_key: Any) -> str:
    """The record id for a natural key (any JSON value, typically a dict such as {"doc": ..., "chunk": ...})."""
    return str(uuid.uuid5(SIE_NAMESPACE, canonical_json(natural_key)))


def content_hash(value: Any) -> str:
    """`sha256:<hex>` of the canonical JSON of `value`: equal content, equal hash, whatever the key order."""
    return "sha256:" + hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def is_canonical_uuid(value: object) -> bool:
    """True for the lower-case, hyphenated form every database hands back (so ids round-trip unchanged)."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
