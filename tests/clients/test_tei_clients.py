"""TEI's clients, pointed at a model's base URL /tei/{model} (or the root, for SIE_DEFAULT_MODEL): each answer
is compared with the Engine's (the native route) for the same texts."""

from __future__ import annotations

import numpy as np
import pytest
from client_settings import KEY, MINILM, PROMPTS, TEXTS
from compat_reference import native_dense

compat = pytest.mark.compat


def close(got, expected) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float32), expected, atol=1e-6)


@compat("TEI", "huggingface_hub", "InferenceClient.feature_extraction (normalize, prompt_name, truncate)")
def test_inference_client_feature_extraction(url, http):
    from huggingface_hub import InferenceClient
    from huggingface_hub.errors import HfHubHTTPError

    client = InferenceClient(model=f"{url}/tei/{MINILM}", token=KEY)
    close(client.feature_extraction(TEXTS), native_dense(http, MINILM, TEXTS))
    close(InferenceClient(model=url, token=KEY).feature_extraction(TEXTS[0]), native_dense(http, MINILM, TEXTS[:1]))
    prompts = InferenceClient(model=f"{url}/tei/{PROMPTS}", token=KEY)
    close(prompts.feature_extraction("bread", prompt_name="query", normalize=False, truncation_direction="right"),
          native_dense(http, PROMPTS, ["bread"], is_query=True, normalize=False))
    with pytest.raises(HfHubHTTPError) as e:
        client.feature_extraction("word " * 400, truncate=False)
    assert e.value.response.status_code == 422 and "256 tokens" in str(e.value)


@compat("TEI", "huggingface_hub", "InferenceClient.sentence_similarity")
def test_inference_client_sentence_similarity(url, http):
    from huggingface_hub import InferenceClient

    sims = InferenceClient(model=f"{url}/tei/{MINILM}", token=KEY).sentence_similarity(TEXTS[0], TEXTS)
    vectors = native_dense(http, MINILM, TEXTS)
    assert sims == pytest.approx([float(vectors[0] @ v) for v in vectors], abs=1e-5)


@compat("TEI", "langchain-huggingface", "HuggingFaceEndpointEmbeddings(model=URL)",
        fails="it refuses a URL in `model` (\"must be a HuggingFace repo ID\"); set its `client` instead")
def test_langchain_huggingface_endpoint_embeddings_refuse_a_url(url):
    from langchain_huggingface import HuggingFaceEndpointEmbeddings

    with pytest.raises(ValueError, match="must be a HuggingFace repo ID, not a URL"):
        HuggingFaceEndpointEmbeddings(model=f"{url}/tei/{MINILM}", huggingfacehub_api_token=KEY)


@compat("TEI", "langchain-huggingface", "HuggingFaceEndpointEmbeddings with client=InferenceClient(URL)")
def test_langchain_huggingface_endpoint_embeddings_over_a_tei_client(url, http):
    from huggingface_hub import InferenceClient
    from langchain_huggingface import HuggingFaceEndpointEmbeddings

    emb = HuggingFaceEndpointEmbeddings(model=MINILM, huggingfacehub_api_token=KEY)
    emb.client = InferenceClient(model=f"{url}/tei/{MINILM}", token=KEY)
    close(emb.embed_documents(TEXTS), native_dense(http, MINILM, TEXTS))
    close([emb.embed_query(TEXTS[1])], native_dense(http, MINILM, TEXTS[1:]))


@compat("TEI", "llama-index-embeddings-text-embeddings-inference", "TextEmbeddingsInference.get_text_embedding_batch")
def test_llamaindex_text_embeddings_inference(url, http):
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    emb = TextEmbeddingsInference(model_name=MINILM, base_url=f"{url}/tei/{MINILM}", auth_token=KEY)
    close(emb.get_text_embedding_batch(TEXTS), native_dense(http, MINILM, TEXTS))
    close([emb.get_query_embedding(TEXTS[0])], native_dense(http, MINILM, TEXTS[:1]))


@compat("TEI", "huggingface-api-haystack", "HuggingFaceAPITextEmbedder / DocumentEmbedder (text_embeddings_inference)")
def test_haystack_huggingface_api_embedders(url, http):
    from haystack import Document
    from haystack.utils import Secret
    from haystack_integrations.components.embedders.huggingface_api import (
        HuggingFaceAPIDocumentEmbedder,
        HuggingFaceAPITextEmbedder,
    )

    params = {"api_type": "text_embeddings_inference", "api_params": {"url": f"{url}/tei/{MINILM}"},
              "token": Secret.from_token(KEY)}
    text = HuggingFaceAPITextEmbedder(**params).run(text=TEXTS[0])["embedding"]   # Haystack's default: normalize=False
    close([text], native_dense(http, MINILM, TEXTS[:1], normalize=False))
    docs = HuggingFaceAPIDocumentEmbedder(**params, normalize=True).run(documents=[Document(content=t) for t in TEXTS])
    close([d.embedding for d in docs["documents"]], native_dense(http, MINILM, TEXTS))


@compat("TEI", "huggingface-api-haystack", "HuggingFaceTEISparseTextEmbedder (/embed_sparse)")
def test_haystack_tei_sparse_embedder(url, http):
    from haystack.utils import Secret
    from haystack_integrations.components.embedders.huggingface_api import HuggingFaceTEISparseTextEmbedder

    got = HuggingFaceTEISparseTextEmbedder(api_base_url=f"{url}/tei/{MINILM}", token=Secret.from_token(KEY)).run(
        text="hello world hello")["sparse_embedding"]
    item = http.post(f"/v1/encode/{MINILM}", json={"items": [{"text": "hello world hello"}],
                                                   "params": {"output_types": ["sparse"]}}).json()["items"][0]
    assert got.indices == item["sparse"]["indices"] and got.values == pytest.approx(item["sparse"]["values"])


@compat("TEI", "chromadb", "HuggingFaceEmbeddingServer (embedding function)")
def test_chroma_huggingface_embedding_server(url, http):
    from chromadb.utils.embedding_functions import HuggingFaceEmbeddingServer

    ef = HuggingFaceEmbeddingServer(url=f"{url}/tei/{MINILM}/embed", api_key=KEY)
    close(ef(TEXTS), native_dense(http, MINILM, TEXTS))
