"""The where language: parse errors name the path; each database gets its own translation."""

from __future__ import annotations

import pytest
from qdrant_client import models

from connectors import ConnectorError
from connectors.chroma import to_chroma_where
from connectors.filters import And, Condition, Or, parse_where
from connectors.lancedb import to_sql
from connectors.qdrant import to_qdrant_filter


def test_shorthands_parse_to_conditions():
    assert parse_where({"lang": "en"}) == Condition("lang", "$eq", "en")
    assert parse_where({"year": {"$gte": 2020, "$lt": 2024}}) == \
        And((Condition("year", "$gte", 2020), Condition("year", "$lt", 2024)))
    assert parse_where({"$or": [{"a": 1}, {"b": {"$in": ["x", "y"]}}]}) == \
        Or((Condition("a", "$eq", 1), Condition("b", "$in", ("x", "y"))))
    assert parse_where({"$and": [{"a": True}]}) == Condition("a", "$eq", True)
    assert parse_where(None) is None


@pytest.mark.parametrize(("where", "field", "words"), [
    ({"a": {"$like": "x"}}, "where.a.$like", "valid operators: $eq, $ne"),
    ({"$not": {"a": 1}}, "where.$not", "unknown operator"),
    ({"a": {"$gt": "z"}}, "where.a.$gt", "compares numbers"),
    ({"a": {"$gt": True}}, "where.a.$gt", "compares numbers"),
    ({"a": {"$in": []}}, "where.a.$in", "non-empty list"),
    ({"a": {"$in": [1, "x"]}}, "where.a.$in", "share one type"),
    ({"a": None}, "where.a", "str, int, float or bool"),
    ({"a": float("inf")}, "where.a", "finite"),
    ({"$and": {"a": 1}}, "where.$and", "non-empty list"),
    ({"a..b": 1}, "where.a..b", "empty dotted segment"),
    ({}, "where", "non-empty dict"),
    ({"$or": [{"a": 1}, {"b": {}}]}, "where.$or[1].b", "at least one operator"),
])
def test_mistakes_name_their_path(where, field, words):
    with pytest.raises(ConnectorError) as err:
        parse_where(where)
    assert err.value.field == field and err.value.code == "invalid_filter"
    assert words in err.value.message


WHERE = {"$or": [{"lang": "en", "src.page": {"$gte": 2}}, {"tag": {"$nin": ["a", "b"]}, "ok": True}]}


def test_chroma_translation_uses_flattened_keys():
    assert to_chroma_where(parse_where(WHERE)) == {"$or": [
        {"$and": [{"lang": {"$eq": "en"}}, {"src.page": {"$gte": 2}}]},
        {"$and": [{"tag": {"$nin": ["a", "b"]}}, {"ok": {"$eq": True}}]},
    ]}


def test_lancedb_translation_reads_the_json_column_by_type():
    assert to_sql(parse_where(WHERE)) == (
        "((json_get_string(metadata, 'lang') = 'en' AND json_get_float(json_get(metadata, 'src'), 'page') >= 2)"
        " OR (json_get_string(metadata, 'tag') NOT IN ('a', 'b') AND json_get_bool(metadata, 'ok') = TRUE))")
    assert to_sql(parse_where({"q": "it's"})) == "json_get_string(metadata, 'q') = 'it''s'"


def test_qdrant_translation_builds_payload_filters():
    flt = to_qdrant_filter(parse_where({"lang": {"$ne": "en"}, "n": 3, "f": {"$in": [0.5, 1.5]}}))
    ne, eq, within = flt.must
    assert ne.must_not[0] == models.FieldCondition(key="lang", match=models.MatchValue(value="en"))
    assert eq.must[0] == models.FieldCondition(key="n", range=models.Range(gte=3, lte=3))
    assert [c.range for c in within.must[0].should] == [models.Range(gte=0.5, lte=0.5), models.Range(gte=1.5, lte=1.5)]
