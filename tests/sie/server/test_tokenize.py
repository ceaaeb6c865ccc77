"""POST /v1/tokenize/{model} and the Engine protocol's `count_tokens` / `tokenize` / `models` over HTTP: the
counts, ids and spans of the model's own tokenizer (checked against tokenizer.json read here), the same
answers in-process and through the client, and 4xx errors naming the field, the limit and the value."""

from __future__ import annotations

import asyncio

import msgpack
import pytest
from tokenizers import Tokenizer

from sie import SieClient
from sie.server.errors import http_status

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
LONG = "word " * 600  # 3000 characters (over this server's SIE_MAX_CHARS) and 600 tokens (over max_tokens 256)
TEXTS = ["Hello world", "", "   ", "Ünïcödé, punctuation!? and [brackets]", LONG]


@pytest.fixture(scope="module")
def reference(minilm_path) -> Tokenizer:
    tok = Tokenizer.from_file(str(minilm_path / "tokenizer.json"))
    tok.no_padding()      # MiniLM's tokenizer.json pads to 128 tokens
    tok.no_truncation()
    return tok


@pytest.fixture(scope="module")
def in_process():
    from sie import Engine
    from sie.config import Settings

    e = Engine(Settings(device="cpu", cpu_precision="fp32"))
    yield e
    e.close()


@pytest.fixture()
def client(server):
    c = SieClient(server.url, api_key="test-key")
    yield c
    c.close()


def test_route_counts_ids_and_spans_as_the_tokenizer_does(server, reference):
    want = reference.encode_batch(TEXTS)
    with server.client() as http:
        r = http.post("/v1/tokenize/all-MiniLM-L6-v2", json={
            "items": [{"id": f"t{i}", "text": t} for i, t in enumerate(TEXTS)],
            "params": {"return_ids": True, "return_offsets": True}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == MINILM
        assert [it["id"] for it in body["items"]] == [f"t{i}" for i in range(len(TEXTS))]
        assert [it["tokens"] for it in body["items"]] == [len(e.ids) for e in want]
        assert [it["ids"] for it in body["items"]] == [e.ids for e in want]
        assert [it["offsets"] for it in body["items"]] == [[list(o) for o in e.offsets] for e in want]
        assert body["usage"] == {"tokens": sum(len(e.ids) for e in want)}
        assert body["items"][1]["tokens"] == 2 and body["items"][-1]["tokens"] == 602  # [CLS] [SEP]; never cut

        bare = reference.encode_batch(TEXTS, add_special_tokens=False)
        r = http.post("/v1/tokenize/all-MiniLM-L6-v2", content=msgpack.packb(
            {"items": [{"text": t} for t in TEXTS], "params": {"add_special_tokens": False, "priority": "batch"}}),
            headers={"content-type": "application/msgpack", "accept": "application/msgpack"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/msgpack"
        items = msgpack.unpackb(r.content)["items"]
        assert [it["tokens"] for it in items] == [len(e.ids) for e in bare] and [it["tokens"] for it in items][1] == 0
        assert all("ids" not in it and "offsets" not in it for it in items)

        r = http.post("/v1/tokenize/all-MiniLM-L6-v2", json={"items": []})  # only checks the tokenizer loads
        assert r.status_code == 200 and r.json()["items"] == []
        r = http.post("/v1/tokenize/tiny/corrupt", json={"items": [{"text": "Hello world"}]})
        assert r.status_code == 200 and r.json()["items"][0]["tokens"] == 4  # the tokenizer, never the weights


@pytest.mark.parametrize(("model", "body", "status", "code", "field", "words"), [
    ("no-such-model", {"items": [{"text": "x"}]}, 404, "model_not_found", "model", "unknown model 'no-such-model'"),
    ("all-MiniLM-L6-v2", {"items": [{"text": "x"}] * 65}, 413, "payload_too_large", "items",
     "65 items exceeds the limit of 64"),
    ("all-MiniLM-L6-v2", {"items": [{"text": 5}]}, 422, "invalid_input", "items[0].text", "(got 5)"),
    ("all-MiniLM-L6-v2", {"items": [{"text": "x"}], "params": {"return_ids": "maybe"}}, 422, "invalid_input",
     "params.return_ids", "(got 'maybe')"),
    ("all-MiniLM-L6-v2", {"items": [{"text": "x"}], "params": {"truncate": True}}, 422, "invalid_input",
     "params.truncate", "unknown field"),
    ("all-MiniLM-L6-v2", {"items": [{"text": "x"}], "params": {"priority": "now"}}, 422, "invalid_input",
     "params.priority", "(got 'now')"),
    ("all-MiniLM-L6-v2", {}, 422, "invalid_input", "items", "Field required"),
])
def test_route_errors_name_the_field_the_limit_and_the_value(server, model, body, status, code, field, words):
    with server.client() as http:
        r = http.post(f"/v1/tokenize/{model}", json=body)
    error = r.json()["error"]
    assert (r.status_code, error["code"], error["field"]) == (status, code, field), r.text
    assert words in error["message"]


def test_client_counts_as_the_engine_does_and_as_encode_counts(client, in_process, reference):
    texts = [f"text number {i} {'filler ' * (i % 9)}" for i in range(150)]  # server limit: 64 per request
    counted = client.count_tokens_sync("all-MiniLM-L6-v2", texts)
    assert counted == in_process.count_tokens_sync(MINILM, texts) == [len(e.ids) for e in reference.encode_batch(texts)]
    assert counted == [e.tokens for e in client.encode_sync(MINILM, texts)]  # what encode reports, when nothing is cut
    bare = client.count_tokens_sync(MINILM, texts, add_special_tokens=False, priority="batch")
    assert bare == [n - 2 for n in counted]

    longer = "word " * 300  # 302 tokens, under SIE_MAX_CHARS for encode
    (long_count,) = client.count_tokens_sync(MINILM, [longer])
    (long_encoded,) = client.encode_sync(MINILM, [longer])
    assert (long_count, long_encoded.tokens, long_encoded.truncated) == (302, 256, True)

    spans = client.tokenize_sync(MINILM, TEXTS, add_special_tokens=False, return_ids=True, return_offsets=True)
    assert spans == in_process.tokenize_sync(MINILM, TEXTS, add_special_tokens=False, return_ids=True,
                                             return_offsets=True)
    want = reference.encode_batch(TEXTS, add_special_tokens=False)
    assert [(t.tokens, t.ids, t.offsets) for t in spans] == [(len(e.ids), e.ids, e.offsets) for e in want]
    assert client.tokenize_sync(MINILM, ["Hello world"])[0].ids is None  # ids only when asked for
    assert client.count_tokens_sync(MINILM, []) == []


def test_client_async_api_and_model_listing(client, in_process):
    async def run():
        try:
            return await asyncio.gather(client.count_tokens(MINILM, ["one", "two words"]),
                                        client.tokenize(MINILM, ["one"], return_ids=True), client.models())
        finally:
            await client.aclose()

    counts, (one,), remote = asyncio.run(run())
    assert counts == [3, 4] and one.tokens == 3 and len(one.ids) == 3
    local = in_process.models_sync()
    card_keys = ("id", "object", "owned_by", "aliases", "architecture", "capabilities", "dims", "pooling",
                 "max_tokens", "source")
    mine = next(m for m in local if m["id"] == MINILM)
    theirs = next(m for m in remote if m["id"] == MINILM)
    assert {k: theirs[k] for k in card_keys} == {k: mine[k] for k in card_keys}
    assert set(mine) == set(theirs)   # the route's listing is the Engine's, state and queue depth included
    assert theirs["state"] == "device" and mine["queue_depth"] == theirs["queue_depth"] == 0


def test_client_tokenize_errors_are_the_servers(client):
    from sie.errors import SieError

    with pytest.raises(SieError) as info:
        client.count_tokens_sync("no-such-model", ["x"])
    assert (http_status(info.value), info.value.code, info.value.field) == (404, "model_not_found", "model")
    with pytest.raises(SieError) as info:
        client.tokenize_sync(MINILM, [5])
    assert (http_status(info.value), info.value.field) == (422, "items[0].text")
