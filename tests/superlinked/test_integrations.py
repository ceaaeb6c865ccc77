"""Superlinked's integration packages (sie-langchain, sie-llamaindex, sie-haystack, sie-chroma, sie-qdrant,
sie-lancedb) against `sie serve`, one test each: their embedders' vectors equal sie's native answer. Most of
them take no API key, so the key comes as the SDK documents it: SIE_API_KEY, for the origin in SIE_BASE_URL."""

from __future__ import annotations

import numpy as np
import pytest
from compat_reference import native_dense
from sdk_settings import KEY, MINILM, PROMPTS, TEXTS

API = "SIE SDK integrations"


@pytest.fixture(autouse=True)
def sdk_env(monkeypatch, url):
    monkeypatch.setenv("SIE_BASE_URL", url)
    monkeypatch.setenv("SIE_API_KEY", KEY)


def close(got, want) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float32), want, atol=1e-5)


@pytest.mark.compat(API, "sie-langchain", "SIEEmbeddings.embed_documents / embed_query")
def test_langchain_embeddings(url, http):
    from sie_langchain import SIEEmbeddings

    embeddings = SIEEmbeddings(base_url=url, model=PROMPTS, api_key=KEY)
    close(embeddings.embed_documents(TEXTS), native_dense(http, PROMPTS, TEXTS))
    close([embeddings.embed_query(TEXTS[0])], native_dense(http, PROMPTS, TEXTS[:1], is_query=True))


@pytest.mark.compat(API, "sie-llamaindex", "SIEEmbedding.get_text_embedding_batch / get_query_embedding")
def test_llamaindex_embedding(url, http):
    from sie_llamaindex import SIEEmbedding

    embed = SIEEmbedding(base_url=url, model_name=PROMPTS)
    close(embed.get_text_embedding_batch(TEXTS), native_dense(http, PROMPTS, TEXTS))
    close([embed.get_query_embedding(TEXTS[0])], native_dense(http, PROMPTS, TEXTS[:1], is_query=True))


@pytest.mark.compat(API, "sie-haystack", "SIETextEmbedder / SIEDocumentEmbedder")
def test_haystack_embedders(url, http):
    from haystack import Document
    from sie_haystack import SIEDocumentEmbedder, SIETextEmbedder

    text = SIETextEmbedder(base_url=url, model=PROMPTS)
    text.warm_up()
    close([text.run(text=TEXTS[0])["embedding"]], native_dense(http, PROMPTS, TEXTS[:1], is_query=True))
    docs = SIEDocumentEmbedder(base_url=url, model=PROMPTS)
    docs.warm_up()
    embedded = docs.run(documents=[Document(content=t) for t in TEXTS])["documents"]
    close([d.embedding for d in embedded], native_dense(http, PROMPTS, TEXTS))


@pytest.mark.compat(API, "sie-chroma", "SIEEmbeddingFunction in a chromadb collection")
def test_chroma_embedding_function(url, http, tmp_path):
    import chromadb
    from sie_chroma import SIEEmbeddingFunction

    ef = SIEEmbeddingFunction(base_url=url, model=MINILM)
    close(ef(TEXTS), native_dense(http, MINILM, TEXTS))
    collection = chromadb.PersistentClient(path=str(tmp_path)).create_collection("docs", embedding_function=ef)
    collection.add(ids=["sport", "money"], documents=TEXTS)
    assert collection.query(query_texts=["who won the match?"], n_results=1)["ids"] == [["sport"]]


@pytest.mark.compat(API, "sie-qdrant", "SIEVectorizer.embed_documents / embed_query")
def test_qdrant_vectorizer(url, http):
    from sie_qdrant import SIEVectorizer

    vectorizer = SIEVectorizer(base_url=url, model=PROMPTS)
    close(vectorizer.embed_documents(TEXTS), native_dense(http, PROMPTS, TEXTS))
    close([vectorizer.embed_query(TEXTS[0])], native_dense(http, PROMPTS, TEXTS[:1], is_query=True))


@pytest.mark.compat(API, "sie-lancedb", "SIEEmbeddingFunction (registry \"sie\") in a LanceDB table")
def test_lancedb_embedding_function(url, http, tmp_path):
    import lancedb
    import sie_lancedb  # noqa: F401 (registers "sie")
    from lancedb.embeddings import get_registry
    from lancedb.pydantic import LanceModel, Vector

    ef = get_registry().get("sie").create(base_url=url, model=MINILM)
    assert ef.ndims() == 384   # GET /v1/models/{model}: dims per output

    class Doc(LanceModel):
        text: str = ef.SourceField()
        vector: Vector(ef.ndims()) = ef.VectorField()

    table = lancedb.connect(str(tmp_path)).create_table("docs", schema=Doc)
    table.add([{"text": t} for t in TEXTS])
    close(table.to_arrow()["vector"].to_pylist(), native_dense(http, MINILM, TEXTS))
    assert table.search("who won the match?").limit(1).to_list()[0]["text"] == TEXTS[0]
