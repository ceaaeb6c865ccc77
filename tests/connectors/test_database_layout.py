"""What each sink leaves in its database, read back through the database's own client, and how a record
the database itself refuses is isolated from its batch."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from qdrant_client import models

from connectors import SparseVector, make_record, open_sink, record_id
from connectors.metadata import JSON_KEYS

SCHEMA = {"vectors": {"dense": {"dim": 4, "distance": "dot"}, "words": {"kind": "sparse", "idf": True},
                      "tokens": {"kind": "multivector", "dim": 3}}}


def full_record(i: int):
    return make_record(i, f"doc {i}", {"dense": [i, 1, 0, 0], "words": SparseVector([9, 2], [0.5, 1.0]),
                                       "tokens": [[1, 0, 0], [0, 1, 0]]}, {"src": {"page": i}, "tags": ["a"]})


@pytest.fixture(params=["embedded", "server"])
def chroma_config(request, tmp_path):
    if request.param == "embedded":
        return {"type": "chroma", "collection": "docs", "path": str(tmp_path)}
    return {"type": "chroma", "collection": f"docs{id(request)}", "url": request.getfixturevalue("chroma_server")}


def test_chroma_isolates_the_record_it_refuses(chroma_config):
    with open_sink({**chroma_config, "batch_size": 4}) as sink:
        sink.ensure({"vectors": {"dense": {"dim": 2}}})
        batch = [make_record(i, f"t{i}", {"dense": [1, i]}, {"n": i}) for i in range(10)]
        batch[6] = make_record(6, "t6", {"dense": [1, 6]}, {"chroma:document": "reserved by Chroma"})
        result = sink.upsert(batch)
        assert result.written == 9
        [failed] = result.failed
        assert failed.index == 6 and "chroma refused it" in failed.error and "chroma:document" in failed.error
        assert sink.count() == 9
        sink.drop()


def test_chroma_keeps_flattened_scalar_metadata_and_the_schema(chroma_config):
    with open_sink(chroma_config) as sink:
        sink.ensure({"vectors": {"dense": {"dim": 2, "distance": "dot"}}})
        sink.upsert([make_record("k", "text", {"dense": [1, 0]}, {"src": {"page": 2}, "tags": ["a", 1]})])
        raw = sink.client.get_collection(chroma_config["collection"])
        stored = raw.get(ids=[record_id("k")], include=["metadatas", "documents", "embeddings"])
        meta = stored["metadatas"][0]
        assert meta["src.page"] == 2 and meta["tags"] == '["a",1]' and json.loads(meta[JSON_KEYS]) == ["tags"]
        assert stored["documents"] == ["text"] and list(stored["embeddings"][0]) == [1.0, 0.0]
        assert json.loads(raw.metadata["_sie_schema"])["vectors"]["dense"]["distance"] == "dot"
        assert raw.configuration["hnsw"]["space"] == "ip"
        sink.drop()


def test_qdrant_collection_has_named_idf_sparse_and_maxsim_vectors():
    with open_sink({"type": "qdrant", "collection": "docs"}) as sink:
        sink.ensure(SCHEMA)
        sink.upsert([full_record(1)])
        params = sink.client.get_collection("docs").config.params
        assert params.vectors["dense"].distance == models.Distance.DOT and params.vectors["dense"].size == 4
        assert params.vectors["tokens"].multivector_config.comparator == models.MultiVectorComparator.MAX_SIM
        assert params.sparse_vectors["words"].modifier == models.Modifier.IDF
        [point] = sink.client.retrieve("docs", [record_id(1)], with_vectors=True, with_payload=True)
        assert point.payload["_sie_text"] == "doc 1"
        assert {k: v for k, v in point.payload.items() if not k.startswith("_sie_")} == {"src": {"page": 1},
                                                                                         "tags": ["a"]}
        assert point.vector["words"].indices == [2, 9] and point.vector["words"].values == [1.0, 0.5]
        assert point.vector["tokens"] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_lancedb_table_layout(tmp_path):
    with open_sink({"type": "lancedb", "collection": "docs", "uri": str(tmp_path)}) as sink:
        sink.ensure(SCHEMA)
        sink.upsert([full_record(1), full_record(2)])
        table = sink.db.open_table("docs")
        schema = table.schema
        assert schema.field("dense").type == pa.list_(pa.float32(), 4)
        assert schema.field("tokens").type == pa.list_(pa.list_(pa.float32(), 3))
        assert schema.field("words_indices").type == pa.list_(pa.uint32())
        assert schema.field("words_values").type == pa.list_(pa.float32())
        assert json.loads(schema.metadata[b"sie_schema"])["vectors"]["words"]["idf"] is True
        rows = {r["id"]: r for r in table.to_arrow().to_pylist()}
        row = rows[record_id(2)]
        assert row["words_indices"] == [2, 9] and row["words_values"] == [1.0, 0.5]
        assert row["dense"] == [2.0, 1.0, 0.0, 0.0] and len(row["tokens"]) == 2
        assert json.loads(row["metadata"])["src"] == {"page": 2} and row["text"] == "doc 2"
        sink.upsert([make_record(2, "new text", {"dense": np.zeros(4), "words": {}, "tokens": [[0, 0, 1]]})])
        assert table.count_rows() == 2
        updated = {r["id"]: r for r in table.to_arrow().to_pylist()}[record_id(2)]
        assert updated["text"] == "new text" and updated["words_indices"] == [] and updated["tokens"] == [[0, 0, 1]]
