"""The HTTP API against a live `sie serve`: native, OpenAI/Cohere routes, formats, envelope, auth."""

from __future__ import annotations

import base64
import concurrent.futures

import msgpack
import numpy as np
import pytest

from sie.codec import unpack_array

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TINY = ("tiny/a", "tiny/b", "tiny/c")  # the tiny catalog of conftest.py


@pytest.fixture(scope="module")
def http(server):
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def reference():
    """In-process answers to compare with (same fp32 weights)."""
    from sie import Engine
    from sie.config import Settings

    engine = Engine(Settings(device="cpu", cpu_precision="fp32"))
    yield engine
    engine.close()


def encode(http, model, texts, **params):
    return http.post(f"/v1/encode/{model}", json={"items": [{"text": t} for t in texts], "params": params})


def test_encode_json_matches_in_process_engine(http, reference):
    texts = ["hello world", "a second, longer sentence about vector search"]
    r = http.post(f"/v1/encode/{MINILM}", json={"items": [{"id": "x1", "text": texts[0]}, {"text": texts[1]}]})
    assert r.status_code == 200, r.text
    body = r.json()
    want = reference.encode_sync(MINILM, texts)
    assert body["model"] == MINILM and [i["id"] for i in body["items"]] == ["x1", None]
    for got, w in zip(body["items"], want):
        assert np.abs(np.array(got["dense"]) - w.dense).max() < 1e-5
        assert got["tokens"] == w.tokens and got["truncated"] is False
        assert set(got["timing"]) == {"queue_ms", "tokenize_ms", "compute_ms"} and got["timing"]["compute_ms"] > 0
    assert body["usage"]["tokens"] == sum(w.tokens for w in want)


def test_encode_msgpack_carries_raw_little_endian_vectors(http, reference):
    payload = msgpack.packb({"items": [{"text": "hello world"}], "params": {"dtype": "float16"}})
    r = http.post(f"/v1/encode/{MINILM}", content=payload,
                  headers={"content-type": "application/msgpack", "accept": "application/msgpack"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/msgpack"
    item = msgpack.unpackb(r.content)["items"][0]
    assert item["dense"]["dtype"] == "float16" and item["dense"]["shape"] == [384]
    vec = unpack_array(item["dense"])
    assert np.abs(vec.astype(np.float32) - reference.encode_sync(MINILM, ["hello world"])[0].dense).max() < 1e-3


def test_encode_binary_and_int8_outputs(http):
    r = encode(http, "all-MiniLM-L6-v2", ["bits please"], dtype="binary").json()
    assert len(r["items"][0]["dense"]) == 48 and all(0 <= b <= 255 for b in r["items"][0]["dense"])
    r = encode(http, "all-MiniLM-L6-v2", ["int8 please"], dtype="int8").json()
    assert max(abs(v) for v in r["items"][0]["dense"]) == 127


def test_openai_embeddings_float_and_base64_with_exact_usage(http, reference):
    texts = ["The quick brown fox", "jumps over the lazy dog"]
    want = reference.encode_sync(MINILM, texts)
    r = http.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == MINILM
    assert [d["index"] for d in body["data"]] == [0, 1] and body["data"][0]["object"] == "embedding"
    assert body["usage"] == {"prompt_tokens": sum(w.tokens for w in want), "total_tokens": sum(w.tokens for w in want)}
    assert np.abs(np.array(body["data"][1]["embedding"]) - want[1].dense).max() < 1e-5
    b64 = http.post("/v1/embeddings", json={"model": MINILM, "input": texts[0], "encoding_format": "base64",
                                            "user": "someone"}).json()
    vec = np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), dtype="<f4")
    assert np.abs(vec - want[0].dense).max() < 1e-5


def test_openai_dimensions_on_a_non_matryoshka_model_is_a_clear_400(http):
    r = http.post("/v1/embeddings", json={"model": MINILM, "input": "x", "dimensions": 128})
    assert r.status_code == 400
    assert r.json()["error"] == {"code": "invalid_input", "field": "dims", "message": r.json()["error"]["message"]}
    assert "Matryoshka" in r.json()["error"]["message"]


def test_score_and_extract_on_a_model_without_those_heads_answer_400(http):
    r = http.post("/v1/rerank", json={"model": "tiny/a", "query": "q", "documents": ["a", {"text": "b"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_capability"
    r = http.post("/v1/score/tiny/a", json={"query": {"text": "q"}, "items": [{"text": "a"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_capability"
    r = http.post("/v1/extract/tiny/a", json={"items": [{"text": "a"}], "params": {"labels": ["person"]}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_capability"


def test_rerank_with_the_bundled_bi_encoder(http):
    docs = ["The match ended in a draw.", "Knead the dough, let it rise, then bake the bread.",
            {"text": "Stocks fell."}]
    r = http.post("/v1/rerank", json={"model": MINILM, "query": "how do I bake bread", "documents": docs,
                                      "top_n": 2, "return_documents": True})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["index"] for x in results] == [1, results[1]["index"]] and len(results) == 2
    assert results[0]["document"]["text"].startswith("Knead")
    assert results[0]["relevance_score"] > results[1]["relevance_score"]


@pytest.mark.parametrize("body, status, code, field", [
    ({"items": []}, 422, "invalid_input", "items"),
    ({"items": [{"text": 5}]}, 422, "invalid_input", "items[0].text"),
    ({"items": [{"text": "x"}], "colour": 1}, 422, "invalid_input", "colour"),
    ({"items": [{"text": "x"}], "params": {"dtype": "int4"}}, 422, "invalid_input", "params.dtype"),
    ({"items": [{"text": "   "}]}, 400, "invalid_input", "items[0]"),
    ({"items": [{"text": "x"}] * 65}, 413, "payload_too_large", "items"),
    ({"items": [{"text": "y" * 2001}]}, 413, "payload_too_large", "items[0]"),
])
def test_bad_requests_get_the_envelope(http, body, status, code, field):
    r = http.post(f"/v1/encode/{MINILM}", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["field"] == field and err["message"].startswith(field)


def test_malformed_bodies_and_body_size_limit(http):
    r = http.post(f"/v1/encode/{MINILM}", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = http.post(f"/v1/encode/{MINILM}", content=b"\xc1", headers={"content-type": "application/msgpack"})
    assert r.status_code == 400 and "not valid msgpack" in r.json()["error"]["message"]
    r = http.post(f"/v1/encode/{MINILM}", content=b"x" * 200_001, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["message"] == "body: 200001 bytes exceeds the limit of 200000 bytes (SIE_MAX_BODY_BYTES)"


def test_unknown_model_and_unknown_route(http):
    r = encode(http, "BAAI/bge-smal-en-v1.5", ["x"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert "did you mean 'BAAI/bge-small-en-v1.5'" in r.json()["error"]["message"]
    r = http.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_auth(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as anon:
        r = anon.post(f"/v1/encode/{MINILM}", json={"items": [{"text": "x"}]})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthorized"
        r = anon.get("/v1/models", headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["error"]["message"] == "authorization: the API key is not valid"
        for path in ("/healthz", "/readyz", "/metrics"):
            assert anon.get(path).status_code == 200
        ok = anon.post("/v1/embeddings", json={"model": MINILM, "input": "x"},
                       headers={"authorization": "Bearer second-key"})
        assert ok.status_code == 200
        r = anon.post("/v1/models/tiny/a/load", headers={"authorization": "Bearer test-key"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_model_load_failures_are_502_and_others_keep_serving(http):
    for model, fragment in (("tiny/corrupt", "loading"), ("tiny/broken", "card of 'tiny/broken' is invalid")):
        for _ in range(2):  # remembered: the second answer is the same 502
            r = encode(http, model, ["x"])
            assert r.status_code == 502, r.text
            assert r.json()["error"]["code"] == "model_load_failed" and fragment in r.json()["error"]["message"]
    assert encode(http, MINILM, ["still serving"]).status_code == 200
    states = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert states["tiny/corrupt"]["state"] == "failed" and states["tiny/corrupt"]["error"]


def test_admin_load_unload_and_model_states(http):
    admin = {"authorization": "Bearer admin-key"}
    r = http.post("/v1/models/tiny/b/load", headers=admin)
    assert r.status_code == 200 and r.json()["state"] == "device" and r.json()["device_bytes"] > 0
    models = http.get("/v1/models").json()
    b = next(m for m in models["data"] if m["id"] == "tiny/b")
    assert b["state"] == "device" and b["dims"] == 64 and b["object"] == "model"
    assert models["memory"]["device"]["used"] >= b["device_bytes"]
    r = http.post("/v1/models/tiny/b/unload", headers=admin)
    assert r.status_code == 200 and r.json()["state"] == "unloaded" and r.json()["device_bytes"] == 0
    assert http.get("/v1/models/tiny/b").json()["state"] == "unloaded"
    r = http.post("/v1/models/tiny/corrupt/load", headers=admin)  # an operator reload retries the load
    assert r.status_code == 502


def test_sixty_four_parallel_requests_across_three_models_match_single_answers(http):
    jobs = [(TINY[i % 3], [f"request {i} text {'word ' * (i % 17)}", f"second item {i}"]) for i in range(64)]
    singles = {}
    for model, texts in jobs[:3] + jobs[3:6]:
        for t in texts:
            singles[(model, t)] = np.array(encode(http, model, [t]).json()["items"][0]["dense"])
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda j: encode(http, j[0], j[1]), jobs))
    for (model, texts), r in zip(jobs, answers):
        assert r.status_code == 200, r.text
        for t, item in zip(texts, r.json()["items"]):
            single = singles.get((model, t))
            if single is None:
                single = singles[(model, t)] = np.array(encode(http, model, [t]).json()["items"][0]["dense"])
            assert np.abs(np.array(item["dense"]) - single).max() < 1e-5


def test_metrics_and_status_page(http):
    encode(http, MINILM, ["count me"])
    text = http.get("/metrics").text
    for name in ("sie_requests_total", "sie_request_duration_seconds_bucket", "sie_phase_duration_seconds_bucket",
                 "sie_batch_tokens_bucket", "sie_queue_depth", "sie_inflight_requests", "sie_models",
                 "sie_model_bytes", "sie_model_loads_total", "sie_memory_budget_bytes"):
        assert name in text, name
    assert f'sie_requests_total{{code="200",model="{MINILM}",route="/v1/encode/{{model:path}}"}}' in text
    page = http.get("/")
    assert page.status_code == 200 and "tiny/a" in page.text and "<table>" in page.text


def test_a_missing_body_field_named_query_is_named(http):
    r = http.post(f"/v1/score/{MINILM}", json={"items": [{"text": "a"}]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "query"
