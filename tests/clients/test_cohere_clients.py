"""Cohere's SDK and LangChain's Cohere classes with a base URL: each answer is compared with the Engine's
(the native route) for the same texts; input_type reaches the card's query or document prompt."""

from __future__ import annotations

import numpy as np
import pytest
from client_settings import KEY, MINILM, PROMPTS, TEXTS
from compat_reference import native_dense

compat = pytest.mark.compat
DOCS = ["Stocks fell sharply on Monday.", "Knead the dough and let it rise.", "Bake the loaf for forty minutes."]
QUERY = "how do I bake bread"


def close(got, expected) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float32), expected, atol=1e-6)


def native_ranking(http, model: str, query: str, docs: list[str]) -> list[tuple[int, float]]:
    r = http.post(f"/v1/score/{model}", json={"query": {"text": query}, "items": [{"text": d} for d in docs]})
    return [(i["index"], i["score"]) for i in r.json()["items"]]


@compat("Cohere", "cohere", "ClientV2.embed (input_type; float, int8, uint8, binary, ubinary)")
def test_cohere_v2_embed_every_embedding_type(url, http):
    import cohere

    co = cohere.ClientV2(api_key=KEY, base_url=url)
    e = co.embed(model=PROMPTS, texts=TEXTS, input_type="search_query",
                 embedding_types=["float", "int8", "uint8", "binary", "ubinary"]).embeddings
    close(e.float_, native_dense(http, PROMPTS, TEXTS, is_query=True))
    int8 = native_dense(http, PROMPTS, TEXTS, is_query=True, dtype="int8")
    bits = native_dense(http, PROMPTS, TEXTS, is_query=True, dtype="binary")
    assert np.array_equal(e.int8, int8) and np.array_equal(np.array(e.uint8) - 128, int8)
    assert np.array_equal(e.ubinary, bits) and np.array_equal(np.array(e.binary) + 128, bits)
    docs = co.embed(model=PROMPTS, texts=TEXTS, input_type="search_document", embedding_types=["float"])
    close(docs.embeddings.float_, native_dense(http, PROMPTS, TEXTS))


@compat("Cohere", "cohere", "ClientV2.rerank")
def test_cohere_v2_rerank(url, http):
    import cohere

    r = cohere.ClientV2(api_key=KEY, base_url=url).rerank(model=MINILM, query=QUERY, documents=DOCS, top_n=2)
    assert [(x.index, pytest.approx(x.relevance_score)) for x in r.results] == native_ranking(http, MINILM, QUERY,
                                                                                              DOCS)[:2]


@compat("Cohere", "cohere", "Client.embed (v1)")
def test_cohere_v1_embed(url, http):
    import cohere

    r = cohere.Client(api_key=KEY, base_url=url).embed(model=PROMPTS, texts=TEXTS, input_type="search_document")
    assert r.response_type == "embeddings_floats"
    close(r.embeddings, native_dense(http, PROMPTS, TEXTS))


@compat("Cohere", "langchain-cohere", "CohereEmbeddings.embed_documents / embed_query")
def test_langchain_cohere_embeddings(url, http):
    from langchain_cohere import CohereEmbeddings

    emb = CohereEmbeddings(model=PROMPTS, cohere_api_key=KEY, base_url=url)
    close(emb.embed_documents(TEXTS), native_dense(http, PROMPTS, TEXTS))
    close([emb.embed_query("bread")], native_dense(http, PROMPTS, ["bread"], is_query=True))


@compat("Cohere", "langchain-cohere", "CohereRerank.compress_documents")
def test_langchain_cohere_rerank(url, http):
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    rerank = CohereRerank(model=MINILM, cohere_api_key=KEY, base_url=url, top_n=2)
    kept = rerank.compress_documents([Document(page_content=d) for d in DOCS], QUERY)
    expected = native_ranking(http, MINILM, QUERY, DOCS)[:2]
    assert [(d.page_content, pytest.approx(d.metadata["relevance_score"])) for d in kept] == \
        [(DOCS[i], s) for i, s in expected]
