"""A schema with a vector of every kind (dense, sparse with IDF, multivector) and records that fill it: what the
per-database layout tests (test_qdrant.py, test_lancedb.py) write and read back through the database's own client."""

from __future__ import annotations

from connectors import Record, SparseVector, make_record

SCHEMA = {"vectors": {"dense": {"dim": 4, "distance": "dot"}, "words": {"kind": "sparse", "idf": True},
                      "tokens": {"kind": "multivector", "dim": 3}}}


def full_record(i: int) -> Record:
    return make_record(i, f"doc {i}", {"dense": [i, 1, 0, 0], "words": SparseVector([9, 2], [0.5, 1.0]),
                                       "tokens": [[1, 0, 0], [0, 1, 0]]}, {"src": {"page": i}, "tags": ["a"]})
