"""Every call of Superlinked's SIE SDK (`SIEClient`, `SIEAsyncClient`) against `sie serve`, URL changed and
nothing else: each answer equals what sie's native JSON route answers for the same input, and each refusal is
the SDK's documented exception with sie's message, SIE's UPPER-CASE code and the field."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from compat_reference import native_dense
from sdk_settings import KEY, M3, MINILM, MINILM_NAME, PROMPTS, TEXTS

PKG = "sie-sdk"


def compat(call: str, **kw):
    return pytest.mark.compat("SIE SDK", PKG, call, **kw)


def native(http, route: str, model: str, body: dict) -> dict:
    r = http.post(f"/v1/{route}/{model}", json=body)
    assert r.status_code == 200, r.text
    return r.json()


@compat("SIEClient.encode dense (one item / a list, ids, model)")
def test_encode_dense(client, http):
    one = client.encode(MINILM, {"text": TEXTS[0]})
    assert isinstance(one["dense"], np.ndarray) and one["dense"].dtype == np.float32 and one["dense"].shape == (384,)
    assert one["model"] == MINILM_NAME
    many = client.encode(MINILM, [{"id": "a", "text": TEXTS[0]}, {"id": "b", "text": TEXTS[1]}])
    assert [r["id"] for r in many] == ["a", "b"]
    want = native_dense(http, MINILM, TEXTS)
    np.testing.assert_allclose(np.stack([r["dense"] for r in many]), want, atol=1e-6)
    np.testing.assert_allclose(one["dense"], want[0], atol=1e-6)


@compat("SIEClient.encode is_query (the card's query prompt)")
def test_encode_is_query(client, http):
    query = client.encode(PROMPTS, {"text": TEXTS[0]}, is_query=True)["dense"]
    document = client.encode(PROMPTS, {"text": TEXTS[0]}, is_query=False)["dense"]
    np.testing.assert_allclose(query, native_dense(http, PROMPTS, TEXTS[:1], is_query=True)[0], atol=1e-6)
    np.testing.assert_allclose(document, native_dense(http, PROMPTS, TEXTS[:1])[0], atol=1e-6)
    assert not np.allclose(query, document)


@compat("SIEClient.encode output_dtype float16 / int8 / binary")
def test_encode_output_dtype(client, http):
    for dtype, numpy_dtype in (("float16", np.float16), ("int8", np.int8), ("binary", np.uint8)):
        got = client.encode(MINILM, {"text": TEXTS[0]}, output_dtype=dtype)["dense"]
        want = native(http, "encode", MINILM, {"items": [{"text": TEXTS[0]}], "params": {"dtype": dtype}})
        assert got.dtype == numpy_dtype, dtype
        np.testing.assert_array_equal(got, np.asarray(want["items"][0]["dense"], dtype=numpy_dtype))
    assert client.encode(MINILM, {"text": TEXTS[0]}, output_dtype="binary")["dense"].shape == (384 // 8,)


@compat("SIEClient.encode options (normalize; sie's priority)")
def test_encode_options(client, http):
    raw = client.encode(MINILM, {"text": TEXTS[0]}, options={"normalize": False})["dense"]
    np.testing.assert_allclose(raw, native_dense(http, MINILM, TEXTS[:1], normalize=False)[0], atol=1e-5)
    assert abs(float(np.linalg.norm(raw)) - 1) > 1e-3
    bulk = client.encode(MINILM, {"text": TEXTS[0]}, options={"priority": "batch"})["dense"]
    np.testing.assert_allclose(bulk, native_dense(http, MINILM, TEXTS[:1])[0], atol=1e-6)


@compat("SIEClient.encode output_types dense + sparse + multivector")
def test_encode_all_outputs(client, http):
    got = client.encode(M3, [{"text": t} for t in TEXTS], output_types=["dense", "sparse", "multivector"])
    want = native(http, "encode", M3, {"items": [{"text": t} for t in TEXTS],
                                       "params": {"output_types": ["dense", "sparse", "multivector"]}})["items"]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g["dense"], w["dense"], atol=1e-6)
        np.testing.assert_array_equal(g["sparse"]["indices"], w["sparse"]["indices"])
        np.testing.assert_allclose(g["sparse"]["values"], w["sparse"]["values"], atol=1e-6)
        assert g["multivector"].ndim == 2 and g["multivector"].shape[1] == 64
        np.testing.assert_allclose(g["multivector"], w["multivector"], atol=1e-6)


@compat("SIEClient.encode sparse (term-frequency lexical vectors)")
def test_encode_sparse(client, http):
    got = client.encode(MINILM, {"text": "hello world hello"}, output_types=["sparse"])
    want = native(http, "encode", MINILM, {"items": [{"text": "hello world hello"}],
                                           "params": {"output_types": ["sparse"]}})["items"][0]["sparse"]
    assert "dense" not in got
    assert got["sparse"]["indices"].tolist() == want["indices"]
    np.testing.assert_allclose(got["sparse"]["values"], want["values"], atol=1e-6)


@compat("SIEClient.score (cross-encoder, bi-encoder; item_id, rank, query_id)")
def test_score(client, http):
    docs = ["Penguins live in Antarctica.", "Stocks fell on Monday.", "Emperor penguins huddle in winter."]
    for model in ("tiny/ce", MINILM):
        got = client.score(model, {"id": "q", "text": "where do penguins live?"},
                           [{"id": f"d{i}", "text": d} for i, d in enumerate(docs)])
        want = native(http, "score", model, {"query": {"text": "where do penguins live?"},
                                             "items": [{"id": f"d{i}", "text": d} for i, d in enumerate(docs)]})
        assert got["query_id"] == "q"
        assert [(s["item_id"], s["rank"]) for s in got["scores"]] == [(w["id"], w["rank"]) for w in want["items"]]
        assert [s["score"] for s in got["scores"]] == pytest.approx([w["score"] for w in want["items"]], abs=1e-6)
    anonymous = client.score(MINILM, {"text": "penguins"}, [{"text": d} for d in docs])
    assert sorted(s["item_id"] for s in anonymous["scores"]) == ["item-0", "item-1", "item-2"]  # SIE's ids


@compat("SIEClient.extract entities (GLiNER labels, token classification)")
def test_extract_entities(client, http):
    text = "Angela Merkel met Emmanuel Macron in Strasbourg."
    for model, labels in (("tiny/gliner", ["person", "city"]), ("tiny/ner", None)):
        got = client.extract(model, {"id": "x", "text": text}, labels=labels)
        body = {"items": [{"text": text}], "params": {} if labels is None else {"labels": labels}}
        want = native(http, "extract", model, body)["items"][0]["entities"]
        assert got["id"] == "x" and want, model
        assert [(e["text"], e["label"], e["start"], e["end"]) for e in got["entities"]] == \
            [(w["text"], w["label"], w["start"], w["end"]) for w in want]
        assert [e["score"] for e in got["entities"]] == pytest.approx([w["score"] for w in want], abs=1e-6)
        assert text[got["entities"][0]["start"]:got["entities"][0]["end"]] == got["entities"][0]["text"]


@compat("SIEClient.extract classifications (zero-shot labels)")
def test_extract_classifications(client, http):
    got = client.extract(MINILM, [{"text": t} for t in TEXTS], labels=["sports", "finance"])
    want = native(http, "extract", MINILM, {"items": [{"text": t} for t in TEXTS],
                                            "params": {"labels": ["sports", "finance"]}})["items"]
    for g, w in zip(got, want):
        assert [c["label"] for c in g["classifications"]] == [c["label"] for c in w["classifications"]]
        assert [c["score"] for c in g["classifications"]] == pytest.approx([c["score"] for c in w["classifications"]])
    assert [g["classifications"][0]["label"] for g in got] == ["sports", "finance"]


@compat("SIEClient.list_models / get_model (dims per output)")
def test_models(client):
    info = client.get_model(M3)
    assert info["dims"] == {"dense": 64, "multivector": 64}
    assert info["outputs"] == ["dense", "sparse", "multivector"] and info["inputs"] == ["text"]
    names = {m["name"] for m in client.list_models()}
    assert {M3, MINILM_NAME, "tiny/gliner"} <= names


@compat("SIEAsyncClient.encode / score / extract")
def test_async_client(url, http):
    from sie_sdk import SIEAsyncClient

    async def calls():
        async with SIEAsyncClient(url, api_key=KEY) as c:
            return (await c.encode(MINILM, [{"text": t} for t in TEXTS]),
                    await c.score(MINILM, {"text": "football"}, [{"text": t} for t in TEXTS]),
                    await c.extract(MINILM, {"text": TEXTS[0]}, labels=["sports", "finance"]))

    encoded, scored, extracted = asyncio.run(calls())
    np.testing.assert_allclose(np.stack([r["dense"] for r in encoded]), native_dense(http, MINILM, TEXTS), atol=1e-6)
    assert scored["scores"][0]["item_id"] == "item-0"
    assert extracted["classifications"][0]["label"] == "sports"


# -- refusals: the SDK's exception types, sie's messages ---------------------------------------------------
@compat("errors: unknown model → RequestError MODEL_NOT_FOUND (404)")
def test_unknown_model(client):
    from sie_sdk import RequestError

    with pytest.raises(RequestError) as e:
        client.encode("no/such-model", {"text": "hi"})
    assert (e.value.code, e.value.status_code, e.value.param) == ("MODEL_NOT_FOUND", 404, "model")
    assert "unknown model 'no/such-model'" in str(e.value)


@compat("errors: bad input → RequestError INVALID_INPUT (400) naming the field")
def test_bad_input(client):
    from PIL import Image
    from sie_sdk import RequestError

    cases = [
        (lambda: client.encode(MINILM, {"text": ""}), "items[0].text", "at least 1 character"),
        (lambda: client.encode(MINILM, {"text": "hi", "images": [Image.new("RGB", (2, 2))]}), "items[0].images",
         "sie serves text models"),
        (lambda: client.encode(MINILM, {"text": "hi"}, output_dtype="ubinary"), "params.output_dtype", "ubinary"),
        (lambda: client.encode(MINILM, {"text": "hi"}, options={"muvera": True}), "params.options.muvera",
         "not an option sie serves"),
        (lambda: client.encode(MINILM, {"text": "hi"}, options={"dims": 0}), "params.options.dims", "greater than 0"),
        (lambda: client.score(MINILM, {"text": "q"}, [{"text": "d"}], options={"profile": "fast"}),
         "options.profile", "'default'"),
        (lambda: client.extract(MINILM, {"text": "hi"}, output_schema={"type": "object"}), "params.output_schema",
         "not served"),
    ]
    for call, field, words in cases:
        with pytest.raises(RequestError) as e:
            call()
        assert (e.value.code, e.value.status_code, e.value.param) == ("INVALID_INPUT", 400, field), field
        assert field in str(e.value) and words in str(e.value), str(e.value)


@compat("errors: a model without the capability → RequestError UNSUPPORTED_CAPABILITY")
def test_unsupported_capability(client):
    from sie_sdk import RequestError

    with pytest.raises(RequestError) as e:
        client.score(M3, {"text": "q"}, [{"text": "d"}])
    assert e.value.code == "UNSUPPORTED_CAPABILITY" and e.value.status_code == 400
    assert M3 in str(e.value)


@compat("errors: a wrong API key → RequestError UNAUTHORIZED (401)")
def test_wrong_key(url):
    from sie_sdk import RequestError, SIEClient

    with SIEClient(url, api_key="not-the-key") as c, pytest.raises(RequestError) as e:
        c.encode(MINILM, {"text": "hi"})
    assert (e.value.code, e.value.status_code) == ("UNAUTHORIZED", 401)
    assert "API key is not valid" in str(e.value)


@compat("errors: X-SIE-Error-Code header; no SDK header → sie's own format")
def test_error_header_and_native_format_kept(url, http):
    """The header the SDK reads first, on the SDK's requests only; a request without X-SIE-SDK-Version is
    sie's native route (lower-case codes, `field`, arrays as lists)."""
    import httpx

    sdk = httpx.post(f"{url}/v1/encode/no-such", json={"items": [{"text": "hi"}]},
                     headers={"X-SIE-SDK-Version": "0.10.1", "Authorization": f"Bearer {KEY}",
                              "Accept": "application/json"})
    assert sdk.status_code == 404 and sdk.headers["X-SIE-Error-Code"] == "MODEL_NOT_FOUND"
    assert sdk.json()["error"]["param"] == "model"
    own = http.post("/v1/encode/no-such", json={"items": [{"text": "hi"}]})
    assert own.status_code == 404 and "X-SIE-Error-Code" not in own.headers
    assert own.json()["error"]["code"] == "model_not_found" and own.json()["error"]["field"] == "model"
    assert isinstance(native(http, "encode", MINILM, {"items": [{"text": "hi"}]})["items"][0]["dense"], list)
