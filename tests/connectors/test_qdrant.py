"""Qdrant: where the contract suite runs it (the client's local engine in memory and on disk, and a live server
when QDRANT_URL points at one), and the collection the sink leaves, read back through Qdrant's own client."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from every_vector_kind import SCHEMA, full_record
from qdrant_client import models
from sink_backends import Backend

from connectors import open_sink, record_id, sink_class
from connectors.qdrant import QdrantSink


def live(folder: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if not os.environ.get("QDRANT_URL"):
        pytest.skip("QDRANT_URL is not set: no Qdrant server here (no binary or Docker on these machines)")
    options = {"url": os.environ["QDRANT_URL"]}
    if os.environ.get("QDRANT_API_KEY"):
        options["api_key"] = "${QDRANT_API_KEY}"
    return options


BACKENDS = {
    "qdrant_memory": Backend("qdrant", lambda folder, request: {}),
    "qdrant_path": Backend("qdrant", lambda folder, request: {"path": str(folder / "qdrant")}),
    "qdrant_live": Backend("qdrant", live, outlives_process=True),
}


def test_registered_as_qdrant():
    assert sink_class("qdrant") is QdrantSink


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
