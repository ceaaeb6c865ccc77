"""The one contract suite, run against every backend the sinks' own test modules declare (`BACKENDS` in
test_<type>.py, see sink_backends.py): today embedded LanceDB, embedded Chroma, a real Chroma server, Qdrant's
local engine in memory and on disk, and live Qdrant / Weaviate when configured."""

from __future__ import annotations

import numpy as np
import pytest

from connectors import ConnectorError, SparseVector, make_record, record_id
from connectors.metadata import HASH, KEY, MODEL, VERSION

DIM = 8
DENSE = {"vectors": {"dense": {"kind": "dense", "dim": DIM, "distance": "cosine"}}}


def unit(seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def meta(i: int) -> dict:
    return {"group": "abc"[i % 3], "n": i, "f": i / 4, "flag": i % 2 == 0, "src": {"page": i % 5, "path": f"d{i}.txt"},
            "tags": ["t", i]}


def records(n: int, start: int = 0, **extra):
    return [make_record({"doc": "d", "chunk": i}, f"text {i}", {"dense": unit(i)}, meta(i), **extra)
            for i in range(start, start + n)]


def ids_of(hits) -> list[str]:
    return [h.id for h in hits]


def test_upsert_twice_keeps_one_copy(make_sink):
    sink = make_sink(DENSE)
    batch = records(20)
    first = sink.upsert(batch)
    assert first.ok and first.written == 20
    assert [item.id for item in first.items] == [r.id for r in batch]
    assert sink.count() == 20
    again = sink.upsert(records(20))
    assert again.ok
    assert sink.count() == 20


def test_get_returns_stored_text_and_metadata_by_id(make_sink):
    sink = make_sink(DENSE)
    batch = records(12, model="m/x", version="2")
    sink.upsert(batch)
    wanted = [batch[4].id, record_id("never written"), batch[11].id, batch[4].id]
    got = sink.get(wanted)
    assert set(got) == {batch[4].id, batch[11].id}
    assert got[batch[4].id].text == "text 4" and got[batch[4].id].metadata == batch[4].metadata
    assert got[batch[11].id].metadata[VERSION] == "2"  # what a pipeline compares to skip unchanged work
    assert len(sink.get([r.id for r in records(30)])) == 12
    with pytest.raises(ConnectorError) as err:
        sink.get(["nope"])
    assert err.value.field == "ids"


def test_update_replaces_text_vector_and_metadata(make_sink):
    sink = make_sink(DENSE)
    sink.upsert(records(10))
    key = {"doc": "d", "chunk": 3}
    new_vector = unit(1000)
    assert sink.upsert([make_record(key, "rewritten", {"dense": new_vector}, {"group": "z", "n": -1})]).ok
    assert sink.count() == 10
    top = sink.search(new_vector, limit=1)[0]
    assert top.id == record_id(key)
    assert top.text == "rewritten"
    assert top.metadata["group"] == "z" and top.metadata["n"] == -1 and "src" not in top.metadata
    assert top.score == pytest.approx(1.0, abs=1e-4)
    old = sink.search(unit(3), limit=10)
    assert all(h.text != "text 3" for h in old)


def test_search_returns_the_nearest_with_its_metadata(make_sink):
    sink = make_sink(DENSE)
    sink.upsert(records(50, model="m/x", version="7"))
    query = unit(17) + 0.05 * unit(99)
    hits = sink.search(query, limit=5)
    assert len(hits) == 5
    assert hits[0].id == record_id({"doc": "d", "chunk": 17})
    assert hits[0].text == "text 17"
    got = hits[0].metadata
    assert {k: got[k] for k in meta(17)} == meta(17)  # nested dict and list come back as written
    assert got[KEY] == '{"chunk":17,"doc":"d"}' and got[MODEL] == "m/x" and got[VERSION] == "7"
    assert got[HASH].startswith("sha256:")
    expected = float(unit(17) @ (query / np.linalg.norm(query)))
    assert hits[0].score == pytest.approx(expected, abs=1e-3)  # cosine similarity, higher is nearer
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("distance", ["dot", "l2"])
def test_scores_follow_the_declared_distance(make_sink, distance):
    sink = make_sink({"vectors": {"dense": {"dim": 4, "distance": distance}}})
    vectors = [np.array(v, np.float32) for v in ([1, 0, 0, 0], [2, 1, 0, 0], [0, 0, 3, 0])]
    sink.upsert([make_record(i, f"v{i}", {"dense": v}) for i, v in enumerate(vectors)])
    query = np.array([1, 1, 0, 0], np.float32)
    hits = sink.search(query, limit=3)
    if distance == "dot":
        expected = {record_id(i): float(v @ query) for i, v in enumerate(vectors)}
    else:
        expected = {record_id(i): -float(((v - query) ** 2).sum()) for i, v in enumerate(vectors)}
    assert ids_of(hits) == sorted(expected, key=expected.get, reverse=True)
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.id], abs=1e-4)


def test_delete_by_ids_and_by_filter(make_sink):
    sink = make_sink(DENSE)
    batch = records(30)
    sink.upsert(batch)
    sink.delete(ids=[batch[0].id, batch[1].id, record_id("never written")])
    assert sink.count() == 28
    sink.delete(where={"group": "c"})  # chunks 2, 5, ..., 29 -> 10 records, chunk 2 among them
    assert sink.count() == 18
    left = set(ids_of(sink.search(unit(0), limit=50)))
    assert batch[0].id not in left and batch[5].id not in left and batch[3].id in left
    sink.delete(ids=[])
    assert sink.count() == 18


FILTERS = [
    ({"group": "a"}, lambda m: m["group"] == "a"),
    ({"group": {"$ne": "a"}}, lambda m: m["group"] != "a"),
    ({"n": {"$in": [1, 4, 7, 100]}}, lambda m: m["n"] in (1, 4, 7)),
    ({"group": {"$nin": ["a", "b"]}}, lambda m: m["group"] not in ("a", "b")),
    ({"n": {"$gt": 5, "$lte": 9}}, lambda m: 5 < m["n"] <= 9),
    ({"f": {"$gte": 2.5}}, lambda m: m["f"] >= 2.5),
    ({"f": {"$lt": 1}}, lambda m: m["f"] < 1),
    ({"flag": True}, lambda m: m["flag"]),
    ({"src.page": 2}, lambda m: m["src"]["page"] == 2),
    ({"src.path": "d3.txt"}, lambda m: m["src"]["path"] == "d3.txt"),
    ({"$or": [{"group": "a"}, {"n": {"$lt": 2}}]}, lambda m: m["group"] == "a" or m["n"] < 2),
    ({"$and": [{"group": "b"}, {"flag": False}], "n": {"$gte": 3}},
     lambda m: m["group"] == "b" and not m["flag"] and m["n"] >= 3),
    ({"group": "nobody"}, lambda m: False),
]


@pytest.mark.parametrize(("where", "expected"), FILTERS, ids=[str(f[0]) for f in FILTERS])
def test_where_filters_select_exactly_the_matching_records(make_sink, where, expected):
    sink = make_sink(DENSE)
    sink.upsert(records(20))
    hits = sink.search(unit(0), where=where, limit=100)
    want = {record_id({"doc": "d", "chunk": i}) for i in range(20) if expected(meta(i))}
    assert set(ids_of(hits)) == want


def test_ten_thousand_records_in_batches(make_sink):
    if make_sink.backend == "qdrant_path":
        pytest.skip("qdrant-client's local engine commits each point to SQLite on its own (~3 ms a point, 30 s "
                    "here); 10,000 records run on its in-memory engine, persistence is covered by the other cases")
    sink = make_sink(DENSE, batch_size=1000)
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((10_000, DIM)).astype(np.float32)
    batch = [make_record(i, f"r{i}", {"dense": vectors[i]}, {"n": i}) for i in range(10_000)]
    result = sink.upsert(batch)
    assert result.ok and result.written == 10_000
    assert sink.count() == 10_000
    assert sink.search(vectors[4321], limit=1)[0].id == record_id(4321)


def test_a_bad_dimension_fails_that_item_and_the_rest_are_written(make_sink):
    sink = make_sink(DENSE)
    batch = records(5)
    batch.insert(2, make_record("short", "short", {"dense": [0.1, 0.2, 0.3]}))
    result = sink.upsert(batch)
    assert result.written == 5
    [failed] = result.failed
    assert failed.index == 2 and failed.id == record_id("short")
    assert "dimension 3" in failed.error and "expects 8" in failed.error
    assert sink.count() == 5


def test_invalid_records_fail_with_their_reason(make_sink):
    sink = make_sink(DENSE)
    good = records(1)[0]
    dup = records(1)[0]
    bad_id = make_record("x", "x", {"dense": unit(1)})
    bad_id.id = "not-a-uuid"
    nan = make_record("nan", "nan", {"dense": np.full(DIM, np.nan)})
    extra = make_record("extra", "e", {"dense": unit(2), "other": unit(3)})
    reserved = make_record("res", "r", {"dense": unit(4)}, {"_sie_secret": 1})
    result = sink.upsert([good, dup, bad_id, nan, extra, reserved])
    reasons = [item.error for item in result.items]
    assert result.items[0].ok and reasons[0] is None
    assert "duplicate id" in reasons[1] and "record 0" in reasons[1]
    assert "canonical UUID" in reasons[2]
    assert "NaN" in reasons[3]
    assert "unknown vector 'other'" in reasons[4]
    assert "reserved prefix" in reasons[5]
    assert sink.count() == 1


def test_ensure_reopens_the_collection_and_refuses_another_schema(make_sink):
    if make_sink.backend == "qdrant_memory":
        pytest.skip("an in-memory Qdrant store does not outlive its client")
    first = make_sink(DENSE)
    name = first.config.collection
    first.upsert(records(3))
    first.close()  # Qdrant's local engine allows one client per folder
    again = make_sink(collection=name)
    assert again.ensure() == first.schema
    assert again.count() == 3
    with pytest.raises(ConnectorError) as err:
        again.ensure({"vectors": {"dense": {"dim": DIM, "distance": "dot"}}})
    assert err.value.code == "schema_mismatch" and err.value.field == "sink.collection" and name in err.value.message
    again.close()
    missing = make_sink(collection="Tmissing" + name[1:])
    with pytest.raises(ConnectorError) as err:
        missing.count()
    assert err.value.code == "collection_missing" and "does not exist" in err.value.message


def test_query_mistakes_name_the_field(make_sink):
    sink = make_sink()
    if sink.type == "chroma":  # one vector per collection: nothing to be ambiguous about
        sink.ensure({"vectors": {"a": {"dim": 4}}})
    else:
        sink.ensure({"vectors": {"a": {"dim": 4}, "b": {"dim": 4}}})
        with pytest.raises(ConnectorError) as err:
            sink.search([1, 0, 0, 0])
        assert err.value.field == "vector_name" and "a (dense, dim 4)" in err.value.message
    with pytest.raises(ConnectorError) as err:
        sink.search([1, 0, 0], vector_name="a")
    assert err.value.field == "query" and "dimension 3" in err.value.message
    with pytest.raises(ConnectorError) as err:
        sink.search([1, 0, 0, 0], vector_name="c")
    assert err.value.field == "vector_name"
    with pytest.raises(ConnectorError) as err:
        sink.search([1, 0, 0, 0], vector_name="a", limit=0)
    assert err.value.field == "limit"
    with pytest.raises(ConnectorError) as err:
        sink.search([1, 0, 0, 0], vector_name="a", where={"n": {"$near": 3}})
    assert err.value.field == "where.n.$near" and "$gte" in err.value.message


SPARSE = {"vectors": {"dense": {"dim": 4}, "words": {"kind": "sparse", "idf": True}}}
MULTI = {"vectors": {"tokens": {"kind": "multivector", "dim": 4, "distance": "cosine"}}}


def test_sparse_vectors_where_supported_else_a_clear_error(make_sink):
    sink = make_sink()
    if "sparse" not in sink.stores:
        with pytest.raises(ConnectorError) as err:
            sink.ensure(SPARSE)
        assert err.value.code == "unsupported" and "sparse" in err.value.message
        return
    sink.ensure(SPARSE)
    docs = {0: {1: 1.0, 7: 0.5}, 1: {2: 1.0, 7: 0.5}, 2: {3: 2.0}}
    sink.upsert([make_record(i, f"s{i}", {"dense": unit(i, 4), "words": w}) for i, w in docs.items()])
    query = SparseVector([2, 9], [1.0, 1.0])
    if "sparse" not in sink.searches:
        with pytest.raises(ConnectorError) as err:
            sink.search(query)
        assert err.value.code == "unsupported" and "cannot search sparse" in err.value.message
        return
    hits = sink.search(query, limit=3)
    assert hits[0].id == record_id(1) and hits[0].text == "s1"
    assert len(hits) == 1  # no other document shares a term with the query
    by_weight = sink.search({3: 1.0}, vector_name="words", limit=1)[0]
    assert by_weight.id == record_id(2)


def test_multivectors_where_supported_else_a_clear_error(make_sink):
    sink = make_sink()
    if "multivector" not in sink.stores:
        with pytest.raises(ConnectorError) as err:
            sink.ensure(MULTI)
        assert err.value.code == "unsupported" and "multivector" in err.value.message
        return
    sink.ensure(MULTI)
    docs = {i: np.stack([unit(10 * i + j, 4) for j in range(3 + i % 2)]) for i in range(6)}
    sink.upsert([make_record(i, f"m{i}", {"tokens": rows}) for i, rows in docs.items()])
    query = np.stack([docs[4][0] + 0.01, docs[4][2]])
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    hits = sink.search(query, limit=6)
    maxsim = {record_id(i): float((query @ rows.T).max(axis=1).sum()) for i, rows in docs.items()}
    assert hits[0].id == record_id(4)
    assert ids_of(hits) == sorted(maxsim, key=maxsim.get, reverse=True)
    if make_sink.backend != "weaviate_live":  # Weaviate reports its own MaxSim distance; order is checked above
        assert hits[0].score == pytest.approx(maxsim[record_id(4)], abs=1e-3)


def test_hybrid_fuses_named_vectors_where_supported_else_a_clear_error(make_sink):
    sink = make_sink()
    if not sink.hybrid:
        sink.ensure(DENSE)
        with pytest.raises(ConnectorError) as err:
            sink.search({"dense": unit(0), "other": unit(1)})
        assert err.value.code == "unsupported" and "hybrid" in err.value.message and "qdrant" in err.value.message
        return
    sink.ensure(SPARSE)
    sink.upsert([make_record(i, f"h{i}", {"dense": unit(i, 4), "words": {i: 1.0, 50: 0.1}}, {"n": i})
                 for i in range(8)])
    hits = sink.search({"dense": unit(5, 4), "words": {5: 1.0}}, limit=3)
    assert hits[0].id == record_id(5)  # first in both lists, so first after reciprocal rank fusion
    assert hits[0].score > hits[1].score
    filtered = sink.search({"dense": unit(5, 4), "words": {5: 1.0}}, where={"n": {"$ne": 5}}, limit=8)
    assert record_id(5) not in ids_of(filtered) and len(filtered) == 7
