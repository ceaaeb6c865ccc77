"""Record ids: UUIDv5 of canonical JSON under a namespace that must never change."""

from __future__ import annotations

import uuid

import pytest

from connectors import SIE_NAMESPACE, ConnectorError, canonical_json, content_hash, make_record, record_id
from connectors.metadata import HASH, KEY, MODEL, VERSION


def test_namespace_is_pinned():
    assert SIE_NAMESPACE == uuid.uuid5(uuid.NAMESPACE_URL, "sie:connectors:record-id")
    assert str(SIE_NAMESPACE) == "448d63a2-8720-584b-a919-3a6189aa76d0"


def test_id_is_uuid5_of_sorted_compact_json():
    key = {"doc": "a.pdf", "chunk": 3, "lang": "日本"}
    assert canonical_json(key) == '{"chunk":3,"doc":"a.pdf","lang":"日本"}'
    assert record_id(key) == str(uuid.uuid5(SIE_NAMESPACE, '{"chunk":3,"doc":"a.pdf","lang":"日本"}'))
    assert uuid.UUID(record_id(key)).version == 5


def test_key_order_does_not_change_the_id_but_values_do():
    assert record_id({"doc": "a", "chunk": 1, "x": {"b": 1, "a": 2}}) == \
        record_id({"x": {"a": 2, "b": 1}, "chunk": 1, "doc": "a"})
    assert record_id({"chunk": 1}) != record_id({"chunk": 2})
    assert record_id({"chunk": 1}) != record_id({"chunk": 1.0})  # JSON tells 1 from 1.0
    assert record_id({"chunk": 1}) != record_id({"chunk": "1"})


def test_unrepresentable_keys_are_refused_naming_the_key():
    for bad in ({"x": float("nan")}, {"x": {1, 2}}, {"x": object()}):
        with pytest.raises(ConnectorError) as err:
            record_id(bad)
        assert err.value.field == "key"


def test_make_record_fills_the_reserved_keys():
    record = make_record({"doc": "a", "chunk": 0}, "hello", {"dense": [1.0, 0.0]}, {"lang": "en"},
                         model="sentence-transformers/all-MiniLM-L6-v2", version="v3")
    assert record.id == record_id({"chunk": 0, "doc": "a"})
    assert record.metadata[KEY] == '{"chunk":0,"doc":"a"}'
    assert record.metadata[MODEL] == "sentence-transformers/all-MiniLM-L6-v2"
    assert record.metadata[VERSION] == "v3"
    assert record.metadata[HASH] == content_hash({"text": "hello", "metadata": {"lang": "en"}})
    assert record.metadata["lang"] == "en"


def test_content_hash_changes_with_content_only():
    a = make_record(1, "same", {"v": [1.0]}, {"a": 1, "b": 2})
    b = make_record(2, "same", {"v": [0.0]}, {"b": 2, "a": 1})
    c = make_record(1, "other", {"v": [1.0]}, {"a": 1, "b": 2})
    assert a.metadata[HASH] == b.metadata[HASH] != c.metadata[HASH]
    assert make_record(1, "x", {}, hash="sha256:given").metadata[HASH] == "sha256:given"
