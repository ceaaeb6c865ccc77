"""Weaviate: where the contract suite runs it (a live server when WEAVIATE_URL points at one; none runs on these
machines: no binary in a reachable registry, no Docker engine), and the mapping checked against the real
client's objects: collection config request bodies, DataObjects, filters, and how batch failed_objects become
item failures."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from sink_backends import Backend
from weaviate.classes.config import DataType, Property
from weaviate.classes.data import DataObject
from weaviate.collections.classes.batch import BatchObject, ErrorObject
from weaviate.collections.classes.filters import _FilterAnd, _FilterOr, _FilterValue, _Operator

from connectors import ConnectorError, Schema, make_record, record_id, sink_class
from connectors import weaviate_mapping as m
from connectors.filters import parse_where
from connectors.records import prepare
from connectors.weaviate import WeaviateSink, collection_name


def live(folder: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if not os.environ.get("WEAVIATE_URL"):
        pytest.skip("WEAVIATE_URL is not set: no Weaviate server here (no binary or Docker on these machines)")
    options = {"url": os.environ["WEAVIATE_URL"]}
    if os.environ.get("WEAVIATE_GRPC_URL"):
        options["grpc_url"] = os.environ["WEAVIATE_GRPC_URL"]
    if os.environ.get("WEAVIATE_API_KEY"):
        options["api_key"] = "${WEAVIATE_API_KEY}"
    return options


BACKENDS = {"weaviate_live": Backend("weaviate", live, outlives_process=True)}

SCHEMA = Schema.parse({"vectors": {"dense": {"dim": 3, "distance": "cosine"},
                                   "tokens": {"kind": "multivector", "dim": 2, "distance": "dot"}}})


def prepared(i: int, metadata: dict):
    item = prepare(make_record(i, f"text {i}", {"dense": [1, 0, 0], "tokens": [[1, 0], [0, 1]]}, metadata), SCHEMA)
    assert not isinstance(item, str), item
    return item


def test_registered_as_weaviate():
    assert sink_class("weaviate") is WeaviateSink


def test_collection_config_bodies_declare_self_provided_named_vectors():
    dense, tokens = [c._to_dict() for c in m.vector_config(SCHEMA)]
    assert dense == {"vectorizer": {"none": {}}, "vectorIndexType": "hnsw",
                     "vectorIndexConfig": {"distance": "cosine"}}
    assert tokens["vectorizer"] == {"none": {}}
    assert tokens["vectorIndexConfig"]["distance"] == "dot"
    assert tokens["vectorIndexConfig"]["multivector"]["enabled"] is True
    assert [c.name for c in m.vector_config(SCHEMA)] == ["dense", "tokens"]
    text, meta = [p._to_dict() for p in m.base_properties()]
    assert text["name"] == "_sie_text" and text["dataType"] == ["text"]
    assert meta["name"] == "_sie_meta" and meta["indexFilterable"] is False and meta["indexSearchable"] is False
    assert m.schema_from_description(m.describe(SCHEMA)) == SCHEMA
    assert m.schema_from_description("someone else's collection") is None
    assert collection_name("docs") == "Docs"


def test_records_become_data_objects_with_filter_properties():
    metadata = {"Lang": "en", "n": 3, "ok": True, "src": {"page": 2, "bad-key": 1}, "tags": ["a"]}
    obj = m.to_data_object(prepared(7, metadata))
    assert isinstance(obj, DataObject)
    assert obj.uuid == record_id(7)
    assert obj.vector == {"dense": [1.0, 0.0, 0.0], "tokens": [[1.0, 0.0], [0.0, 1.0]]}
    props = obj.properties
    assert props["_sie_text"] == "text 7"
    assert json.loads(props["_sie_meta"]) == prepared(7, metadata).metadata  # exact metadata for reads
    assert props["lang"] == "en" and props["n"] == 3.0 and isinstance(props["n"], float) and props["ok"] is True
    assert props["src__page"] == 2.0
    assert "src__bad-key" not in props and "tags" not in props  # not nameable / not scalar: only in _sie_meta
    # The real client accepts what the mapping produces as a batch object.
    batch_object = BatchObject(collection="Docs", properties=props, uuid=obj.uuid, vector=obj.vector, index=0)
    assert str(batch_object.uuid) == record_id(7)


def test_new_properties_are_typed_by_their_first_value():
    objects = [m.to_data_object(prepared(1, {"lang": "en", "n": 1})),
               m.to_data_object(prepared(2, {"lang": 5, "flag": False}))]
    props = m.new_properties(objects, existing={"_sie_text", "_sie_meta", "n"})
    assert [(p.name, p.dataType) for p in props] == [("lang", DataType.TEXT), ("_sie_key", DataType.TEXT),
                                                     ("_sie_hash", DataType.TEXT), ("flag", DataType.BOOL)]
    assert all(isinstance(p, Property) for p in props)
    assert props[0]._to_dict()["tokenization"] == "field"  # exact string equality in filters


def test_failed_objects_become_per_item_failures():
    good, bad = prepared(1, {}), prepared(2, {"n": "not a number"})
    errors = [ErrorObject(message="invalid number property 'n' on class 'Docs': requires a float",
                          object_=BatchObject(collection="Docs", properties=m.to_data_object(bad).properties,
                                              uuid=bad.id, vector=None, index=1),
                          original_uuid=uuid.UUID(bad.id))]
    failures = m.failures_from(errors)
    assert failures == {bad.id: "invalid number property 'n' on class 'Docs': requires a float"}
    assert good.id not in failures
    # Without original_uuid the object's own uuid identifies the record.
    errors[0].original_uuid = None
    assert m.failures_from(errors) == failures


def test_filters_translate_to_weaviate_filter_objects():
    flt = m.to_filter(parse_where({"$or": [{"lang": "en", "src.page": {"$gte": 2}}, {"n": {"$in": [1, 2]}}],
                                   "tag": {"$nin": ["x"]}}))
    assert isinstance(flt, _FilterAnd)
    either, excluded = flt.filters
    assert isinstance(either, _FilterOr)
    both, within = either.filters
    lang, page = both.filters
    assert (lang.target, lang.operator, lang.value) == ("lang", _Operator.EQUAL, "en")
    assert (page.target, page.operator, page.value) == ("src__page", _Operator.GREATER_THAN_EQUAL, 2.0)
    assert (within.target, within.operator, within.value) == ("n", _Operator.CONTAINS_ANY, [1.0, 2.0])
    assert isinstance(excluded, _FilterValue) and excluded.operator == _Operator.CONTAINS_NONE
    with pytest.raises(ConnectorError) as err:
        m.to_filter(parse_where({"bad-key": 1}))
    assert err.value.field == "where.bad-key"


def test_filters_on_properties_nobody_wrote_match_nothing():
    known = {"lang"}
    assert m.prune_unknown(parse_where({"lang": "en", "year": 2020}), known) is None
    assert m.prune_unknown(parse_where({"$or": [{"lang": "en"}, {"year": 2020}]}), known) == parse_where({"lang": "en"})
    assert m.prune_unknown(parse_where({"$or": [{"a": 1}, {"b": 2}]}), known) is None


def test_scores_from_weaviate_distances():
    assert m.score(0.25, "cosine", "dense") == pytest.approx(0.75)
    assert m.score(-3.0, "dot", "dense") == pytest.approx(3.0)
    assert m.score(2.0, "l2", "dense") == pytest.approx(-2.0)
    assert m.score(-1.8, "dot", "multivector") == pytest.approx(1.8)


def test_description_keeps_schema_and_generation_apart():
    schema = Schema.parse({"vectors": {"dense": {"dim": 4}}})
    with_marker = m.describe(schema, "0123abcd")
    assert m.schema_from_description(with_marker) == schema
    assert m.generation_from_description(with_marker) == "0123abcd"
    plain = m.describe(schema)
    assert m.schema_from_description(plain) == schema and m.generation_from_description(plain) is None
    assert m.generation_from_description("someone else's collection") is None
