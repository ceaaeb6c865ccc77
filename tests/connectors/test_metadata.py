"""Metadata rules and the flattening Chroma (and Weaviate filter properties) rely on."""

from __future__ import annotations

import pytest

from connectors.metadata import JSON_KEYS, flatten_for_store, metadata_problem, unflatten


def test_flattening_rule_and_its_exact_reverse():
    meta = {"lang": "en", "n": 3, "ok": False, "src": {"path": "a.pdf", "pos": {"page": 2, "line": 7}},
            "tags": ["x", "y"], "spans": [[0, 4], {"k": 1}]}
    flat = flatten_for_store(meta)
    assert flat == {"lang": "en", "n": 3, "ok": False, "src.path": "a.pdf", "src.pos.page": 2, "src.pos.line": 7,
                    "tags": '["x","y"]', "spans": '[[0,4],{"k":1}]', JSON_KEYS: '["spans","tags"]'}
    assert all(isinstance(v, (str, int, float, bool)) for v in flat.values())
    assert unflatten(flat) == meta


def test_none_and_empty_dicts_are_dropped():
    assert flatten_for_store({"a": None, "b": {}, "c": {"d": None}, "e": 1}) == {"e": 1}
    assert unflatten(None) == {} and unflatten({}) == {}


@pytest.mark.parametrize(("meta", "words"), [
    ([1], "must be a dict"),
    ({"a.b": 1}, "contains '.'"),
    ({"x": {"a.b": 1}}, "contains '.'"),
    ({1: "x"}, "non-empty strings"),
    ({"x": float("nan")}, "not a finite number"),
    ({"x": {1, 2}}, "set is not JSON"),
    ({"_sie_own": 1}, "reserved prefix"),
])
def test_invalid_metadata_is_explained(meta, words):
    problem = metadata_problem(meta)
    assert problem is not None and words in problem


def test_valid_metadata_passes():
    assert metadata_problem({"_sie_key": "{}", "a": [1, {"b": None}], "c": {"d": 1.5}}) is None
