"""Chroma: where the contract suite runs it (embedded in a temp dir, and a real `chroma run` server), and what
the sink leaves in the database, read back through Chroma's own client, including how a record Chroma
itself refuses is isolated from its batch."""

from __future__ import annotations

import json

import pytest
from sink_backends import Backend

from connectors import make_record, open_sink, record_id, sink_class
from connectors.chroma import ChromaSink
from connectors.metadata import JSON_KEYS

BACKENDS = {
    "chroma": Backend("chroma", lambda folder, request: {"path": str(folder / "chroma")}),
    "chroma_server": Backend("chroma", lambda folder, request: {"url": request.getfixturevalue("chroma_server")},
                             outlives_process=True),
}


def test_registered_as_chroma():
    assert sink_class("chroma") is ChromaSink


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
