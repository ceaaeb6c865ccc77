"""LanceDB: where the contract suite runs it (embedded, in a temp dir), and the table the sink leaves, read back
through LanceDB's own client."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
from every_vector_kind import SCHEMA, full_record
from sink_backends import Backend

from connectors import make_record, open_sink, record_id, sink_class
from connectors.lancedb import LanceDBSink

BACKENDS = {"lancedb": Backend("lancedb", lambda folder, request: {"uri": str(folder / "lance")})}


def test_registered_as_lancedb():
    assert sink_class("lancedb") is LanceDBSink


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
