"""The sie Chroma EmbeddingFunction against the real MiniLM model and a real Chroma (embedded and server)."""

from __future__ import annotations

import chromadb
import numpy as np
import pytest
from chromadb.utils.embedding_functions import config_to_embedding_function, known_embedding_functions

from sie.integrations.chroma import SieEmbeddingFunction
from sie.integrations.engine import DEFAULT_MODEL

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def test_registered_and_rebuilt_from_its_config(engine):
    assert known_embedding_functions["sie"] is SieEmbeddingFunction
    ef = SieEmbeddingFunction(MODEL)
    assert ef.get_config() == {"model": MODEL, "url": None, "dims": None, "normalize": None}
    rebuilt = config_to_embedding_function({"name": "sie", "config": ef.get_config()})
    assert isinstance(rebuilt, SieEmbeddingFunction) and rebuilt.get_config() == ef.get_config()
    assert not ef.is_legacy()
    assert SieEmbeddingFunction().model == DEFAULT_MODEL == MODEL


def test_vectors_are_the_engines(engine, docs):
    ef = SieEmbeddingFunction(MODEL)
    vectors = ef(docs)
    expected = [item.dense for item in engine.encode_sync(MODEL, docs)]
    assert len(vectors) == 3 and vectors[0].shape == (384,)
    for got, want in zip(vectors, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert np.linalg.norm(vectors[1]) == pytest.approx(1.0, abs=1e-4)  # the card normalizes
    raw = SieEmbeddingFunction(MODEL, normalize=False)(docs[:1])[0]
    assert np.linalg.norm(raw) != pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("where", ["embedded", "server"])
def test_a_collection_reopens_with_its_function_from_config(engine, tmp_path, request, where, docs):
    def client():
        if where == "embedded":
            return chromadb.PersistentClient(path=str(tmp_path))
        return chromadb.HttpClient(host="127.0.0.1", port=request.getfixturevalue("chroma_port"))

    name = f"sie-ef-{where}-{tmp_path.name[-8:]}"
    first = client()
    collection = first.create_collection(name, embedding_function=SieEmbeddingFunction(MODEL),
                                         configuration={"hnsw": {"space": "cosine"}})
    collection.add(ids=["cat", "markets", "cake"], documents=docs)
    stored = collection.get(ids=["cat"], include=["embeddings"])["embeddings"][0]
    # The same batch the function embedded: in mixed (bf16) precision on an AMX Xeon a vector depends on the
    # rows batched with it by up to ~5e-4 (fp32: 0.0); the same batch is bit-for-bit the engine's answer.
    np.testing.assert_allclose(stored, engine.encode_sync(MODEL, docs)[0].dense, atol=1e-6)

    reopened = client().get_collection(name)  # no embedding_function: Chroma rebuilds ours from its config
    rebuilt = reopened.configuration["embedding_function"]
    assert isinstance(rebuilt, SieEmbeddingFunction) and rebuilt.get_config() == {
        "model": MODEL, "url": None, "dims": None, "normalize": None}
    result = reopened.query(query_texts=["a kitten resting on a rug", "shares dropped on rate fears"], n_results=1)
    assert result["ids"] == [["cat"], ["markets"]]
    first.delete_collection(name)


def test_changing_the_model_of_a_collection_is_refused():
    ef = SieEmbeddingFunction(MODEL)
    with pytest.raises(ValueError, match="changing model"):
        ef.validate_config_update(ef.get_config(), {"model": "intfloat/e5-small-v2"})
    with pytest.raises(ValueError, match="unknown config key 'modle'"):
        SieEmbeddingFunction.build_from_config({"modle": MODEL})
    with pytest.raises(ValueError, match="dims must be a positive integer"):
        SieEmbeddingFunction(MODEL, dims=0)


def test_a_url_config_embeds_through_a_live_server(tmp_path):
    """`url` in the config: vectors come from a real `sie serve` and equal the in-process ones."""
    from servers import Server

    server = Server({"SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1", "SIE_TEST_LOG_DIR": str(tmp_path)},
                    ("--preload", MODEL))
    try:
        remote = SieEmbeddingFunction.build_from_config({"model": MODEL, "url": server.url})
        local = SieEmbeddingFunction(MODEL)
        texts = ["a cat sleeps on the mat", "stocks fell on Monday"]
        got, want = np.array(remote(texts)), np.array(local(texts))
        assert got.shape == (2, 384) and np.abs(got - want).max() < 1e-3
    finally:
        server.stop()
