"""The TEI, Cohere and OpenAI-extension routes on a live server, against the native routes' answers for the
same texts (the client libraries themselves are driven in tests/clients)."""

from __future__ import annotations

import os

import httpx
import numpy as np
import pytest
from compat_reference import native_dense, write_compat_cards
from tiny_cards import card_yaml

MINILM = "all-MiniLM-L6-v2"
KEY = {"authorization": "Bearer compat-key"}


NLI = {0: "entailment", 1: "neutral", 2: "contradiction"}


@pytest.fixture(scope="module")
def srv(server_factory, tiny_catalog, tiny_models, tmp_path_factory):
    cards = write_compat_cards(tmp_path_factory.mktemp("compat-cards"))
    ce = tiny_models("bert", head="sequence-classification", num_labels=1)
    (cards / "ce.yaml").write_text(card_yaml("tiny/ce", ce, "bert", "score: {kind: cross-encoder}"))
    nli = tiny_models("bert", head="sequence-classification", num_labels=3, id2label=NLI,
                      label2id={v: k for k, v in NLI.items()})
    (cards / "nli.yaml").write_text(card_yaml("tiny/nli", nli, "bert",
                                              "extract: {kind: nli, labels: [sports, finance], threshold: 0.0}"))
    return server_factory({"SIE_CATALOG_DIRS": f"{tiny_catalog}{os.pathsep}{cards}", "SIE_DEFAULT_MODEL": MINILM,
                           "SIE_API_KEYS": "compat-key", "SIE_MAX_ITEMS": "8"}, ("--preload", MINILM))


@pytest.fixture(scope="module")
def http(srv):
    with srv.client() as c:
        c.headers.update(KEY)
        yield c


def tei_error(r, status: int, kind: str, *words: str) -> None:
    assert r.status_code == status, r.text[:300]
    body = r.json()
    assert set(body) == {"error", "error_type"} and body["error_type"] == kind, body
    for w in words:
        assert w in body["error"], body


def test_tei_embed_at_the_model_base_url_and_the_root_is_the_engines_answer(http):
    texts = ["The striker scored twice.", "Stocks fell sharply."]
    expected = native_dense(http, MINILM, texts)
    for path in (f"/tei/{MINILM}/embed", "/embed", f"/tei/{MINILM}", "/"):
        got = np.array(http.post(path, json={"inputs": texts}).json(), dtype=np.float32)
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=path)
    single = http.post("/embed", json={"inputs": texts[0], "normalize": False}).json()
    np.testing.assert_allclose(single, native_dense(http, MINILM, texts[:1], normalize=False), atol=1e-6)


def test_tei_prompt_name_picks_the_cards_query_or_document_prompt(http):
    q = http.post("/tei/test-prompts/embed", json={"inputs": "bread", "prompt_name": "query"}).json()
    d = http.post("/tei/test-prompts/embed", json={"inputs": "bread"}).json()
    np.testing.assert_allclose(q, native_dense(http, "test-prompts", ["bread"], is_query=True), atol=1e-6)
    np.testing.assert_allclose(d, native_dense(http, "test-prompts", ["bread"]), atol=1e-6)
    assert not np.allclose(q, d)
    tei_error(http.post("/embed", json={"inputs": "x", "prompt_name": "summary"}), 422, "Validation",
              "prompt_name", "'summary'", "query")


def test_tei_post_root_routes_by_the_models_kind(http):
    texts = ["Stocks fell.", "Knead the dough."]
    ranks = http.post("/tei/tiny/ce", json={"query": "bread", "texts": texts, "return_text": True}).json()
    native = http.post("/v1/score/tiny/ce", json={"query": {"text": "bread"}, "items": [{"text": t} for t in texts]})
    assert [(r["index"], r["text"], pytest.approx(r["score"])) for r in ranks] == \
        [(i["index"], texts[i["index"]], i["score"]) for i in native.json()["items"]]
    classes = http.post("/tei/tiny/nli", json={"inputs": "The striker scored twice."}).json()
    assert {c["label"] for c in classes} == {"sports", "finance"}
    assert sum(c["score"] for c in classes) == pytest.approx(1.0, abs=1e-5)   # single-label: softmax over labels
    classes = http.post("/tei/test-classifier/predict", json={"inputs": "The striker scored twice."}).json()
    assert classes[0]["label"] == "sports" and {c["label"] for c in classes} == {"sports", "finance"}
    batch = http.post("/tei/test-classifier/predict", json={"inputs": [["Stocks fell."], ["A late goal."]]}).json()
    assert [b[0]["label"] for b in batch] == ["finance", "sports"]
    sims = http.post("/", json={"inputs": {"source_sentence": "bread", "sentences": ["bread", "stocks"]}}).json()
    assert sims[0] == pytest.approx(1.0, abs=1e-5) and sims[1] < sims[0]


def test_tei_rerank_sparse_tokenize_decode_info_health(http):
    ranks = http.post("/rerank", json={"query": "bread", "texts": ["Stocks fell.", "Knead the dough."]}).json()
    native = http.post(f"/v1/score/{MINILM}", json={"query": {"text": "bread"},
                                                    "items": [{"text": "Stocks fell."}, {"text": "Knead the dough."}]})
    assert [(r["index"], pytest.approx(r["score"])) for r in ranks] == \
        [(i["index"], i["score"]) for i in native.json()["items"]]
    sparse = http.post("/embed_sparse", json={"inputs": ["hello world hello"]}).json()[0]
    item = http.post(f"/v1/encode/{MINILM}", json={"items": [{"text": "hello world hello"}],
                                                   "params": {"output_types": ["sparse"]}}).json()["items"][0]
    assert [(e["index"], pytest.approx(e["value"])) for e in sparse] == \
        list(zip(item["sparse"]["indices"], item["sparse"]["values"]))
    tokens = http.post("/tokenize", json={"inputs": "hello world"}).json()[0]
    assert [(t["text"], t["special"], t["start"]) for t in tokens] == \
        [("[CLS]", True, None), ("hello", False, 0), ("world", False, 6), ("[SEP]", True, None)]
    assert http.post("/decode", json={"ids": [t["id"] for t in tokens]}).json() == ["hello world"]
    assert http.post("/decode", json={"ids": [[t["id"] for t in tokens]], "skip_special_tokens": False}).json() \
        == ["[CLS] hello world [SEP]"]
    info = http.get(f"/tei/{MINILM}/info").json()
    assert info["model_id"] == "sentence-transformers/all-MiniLM-L6-v2" and info["max_input_length"] == 256
    assert info["model_type"] == {"embedding": {"pooling": "mean"}}
    assert http.get("/tei/tiny/ce/info").json()["model_type"]["reranker"]
    assert http.get("/tei/tiny/nli/info").json()["model_type"]["classifier"]["label2id"] == {"sports": 0, "finance": 1}
    assert http.get("/health", headers={"authorization": ""}).status_code == 200   # public, as in TEI
    tei_error(http.get("/tei/nope/health"), 404, "Validation", "nope")


def test_tei_errors_have_teis_shape_and_status(http, srv):
    tei_error(http.post("/embed", json={"inputs": []}), 400, "Empty", "inputs")
    tei_error(http.post("/embed", json={"inputs": [[101, 102]]}), 422, "Validation", "token ids")
    tei_error(http.post("/embed", json={"inputs": "x", "truncation_direction": "left"}), 422, "Validation", "left")
    tei_error(http.post("/embed", json={"inputs": "word " * 400, "truncate": False}), 422, "Validation",
              "inputs[0]", "256 tokens", "truncate")
    assert len(http.post("/embed", json={"inputs": "word " * 400}).json()[0]) == 384   # TEI's auto-truncate
    tei_error(http.post("/embed", json={"inputs": "x", "dimensions": 100}), 422, "Validation", "dims")
    tei_error(http.post("/embed", json={"inputs": ["x"] * 9}), 413, "Validation", "9 items", "8")
    tei_error(http.post("/embed_all", json={"inputs": "x"}), 424, "Backend", "multivector")
    tei_error(http.post("/predict", json={"inputs": "x"}), 424, "Backend", "/v1/extract")
    tei_error(http.post("/predict", json={"inputs": ["premise", "hypothesis"]}), 422, "Validation", "pairs")
    tei_error(http.post("/rerank", json={"query": "q", "texts": ["a"], "raw_scores": True}), 422, "Validation",
              "raw_scores")
    tei_error(http.post("/tei/tiny/ce/embed", json={"inputs": "x"}), 422, "Validation", "no encode")
    tei_error(http.post("/decode", json={"ids": [10 ** 7]}), 422, "Validation", "10000000")
    tei_error(http.post("/tei/nope/embed", json={"inputs": "x"}), 404, "Validation", "nope")
    tei_error(http.post("/embed", content=b"{"), 422, "Validation", "JSON")
    tei_error(httpx.post(f"{srv.url}/embed", json={"inputs": "x"}), 401, "Validation", "key")


def test_root_tei_routes_without_a_default_model_say_which_setting(server):
    r = server.client().post("/embed", json={"inputs": "x"})
    assert r.status_code == 404 and "SIE_DEFAULT_MODEL" in r.json()["error"]


def test_cohere_embed_types_are_the_engines_quantizations(http):
    texts = ["The striker scored twice.", "Stocks fell sharply."]
    body = http.post("/v2/embed", json={"model": "test-prompts", "texts": texts, "input_type": "search_query",
                                        "embedding_types": ["float", "int8", "uint8", "binary", "ubinary"]}).json()
    e = body["embeddings"]
    assert body["response_type"] == "embeddings_by_type" and body["meta"]["api_version"]["version"] == "2"
    np.testing.assert_allclose(e["float"], native_dense(http, "test-prompts", texts, is_query=True), atol=1e-6)
    int8 = native_dense(http, "test-prompts", texts, is_query=True, dtype="int8")
    bits = native_dense(http, "test-prompts", texts, is_query=True, dtype="binary")
    assert np.array_equal(e["int8"], int8) and np.array_equal(np.array(e["uint8"]) - 128, int8)
    assert np.array_equal(e["ubinary"], bits) and np.array_equal(np.array(e["binary"]) + 128, bits)
    assert min(min(v) for v in e["binary"]) >= -128 and max(max(v) for v in e["uint8"]) <= 255
    v1 = http.post("/v1/embed", json={"model": "test-prompts", "texts": texts}).json()
    assert v1["response_type"] == "embeddings_floats"
    np.testing.assert_allclose(v1["embeddings"], native_dense(http, "test-prompts", texts), atol=1e-6)


def test_cohere_rerank_v2_and_refusals(http):
    r = http.post("/v2/rerank", json={"model": MINILM, "query": "bread", "top_n": 1,
                                      "documents": ["Stocks fell.", "Knead the dough."]}).json()
    assert [x["index"] for x in r["results"]] == [1] and 0 < r["results"][0]["relevance_score"] <= 1
    for body, words in (({"truncate": "START"}, "START"), ({"images": ["data:"]}, "images"),
                        ({"input_type": "image"}, "input_type"), ({"max_tokens": 8}, "max_tokens")):
        bad = http.post("/v2/embed", json={"model": MINILM, "texts": ["x"], **body})
        assert bad.status_code == 422 and words in bad.json()["error"]["message"], bad.text
    long = http.post("/v2/embed", json={"model": MINILM, "texts": ["word " * 400], "truncate": "NONE"})
    assert long.status_code == 422 and "texts[0]" in long.json()["error"]["message"]


def test_openai_input_type_and_the_token_array_hint(http):
    q = http.post("/v1/embeddings", json={"model": "test-prompts", "input": ["bread"], "input_type": "query",
                                          "user": "someone"}).json()["data"][0]["embedding"]
    np.testing.assert_allclose(q, native_dense(http, "test-prompts", ["bread"], is_query=True)[0], atol=1e-6)
    p = http.post("/v1/embeddings", json={"model": "test-prompts", "input": "bread", "prompt_name": "query"}).json()
    assert p["data"][0]["embedding"] == q
    r = http.post("/v1/embeddings", json={"model": MINILM, "input": [[1, 2, 3]]})
    assert r.status_code == 422 and "set check_embedding_ctx_length=False" in r.json()["error"]["message"]
    r = http.post("/v1/embeddings", json={"model": MINILM, "input": "x", "input_type": "query",
                                          "prompt_name": "document"})
    assert r.status_code == 422 and "disagree" in r.json()["error"]["message"]
