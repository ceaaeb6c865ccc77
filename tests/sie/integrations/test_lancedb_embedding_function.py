"""The sie LanceDB embedding-registry function against the real MiniLM model and an embedded table."""

from __future__ import annotations

import lancedb
import numpy as np
from lancedb.embeddings import get_registry
from lancedb.pydantic import LanceModel, Vector

from sie.integrations.lancedb import SieTextEmbeddings

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def test_registered_with_the_models_width(engine, docs):
    fn = get_registry().get("sie").create(name=MODEL)
    assert isinstance(fn, SieTextEmbeddings)
    assert fn.ndims() == 384
    assert fn.safe_model_dump() == {"name": MODEL}  # what the table stores: no engine object
    vectors = fn.compute_source_embeddings(docs)
    # The same batch the function embedded (in mixed precision a vector moves ~5e-4 with its batch mates on an
    # AMX Xeon; the same batch is bit-for-bit the engine's answer).
    np.testing.assert_allclose(vectors[2], engine.encode_sync(MODEL, docs)[2].dense, atol=1e-6)


def test_source_and_vector_fields_embed_on_write_and_on_query(engine, tmp_path, docs):
    fn = get_registry().get("sie").create(name=MODEL)

    class Doc(LanceModel):
        text: str = fn.SourceField()
        vector: Vector(fn.ndims()) = fn.VectorField()

    table = lancedb.connect(tmp_path).create_table("docs", schema=Doc)
    table.add([{"text": t} for t in docs])
    rows = table.to_arrow().to_pylist()
    assert len(rows) == 3 and len(rows[0]["vector"]) == 384
    batch = [r["text"] for r in rows]  # embedded together by table.add
    np.testing.assert_allclose(rows[0]["vector"], engine.encode_sync(MODEL, batch)[0].dense, atol=1e-6)
    assert table.search("a kitten resting on a rug").limit(1).to_list()[0]["text"] == docs[0]

    reopened = lancedb.connect(tmp_path).open_table("docs")  # the function comes back from the table metadata
    assert reopened.search("how do I bake a sponge").limit(1).to_list()[0]["text"] == docs[2]
    reopened.add([{"text": "Bond yields climbed as investors sold government debt."}])
    assert reopened.search("shares dropped on rate fears").limit(2).to_list()[0]["text"] == docs[1]
