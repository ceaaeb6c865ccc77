"""The SDK against a live server: same answers as in-process, splitting, retries, errors, protocol."""

from __future__ import annotations

import asyncio
import concurrent.futures

import numpy as np
import pytest

from sie import SieClient
from sie.errors import SieError
from sie.protocol import EngineProtocol
from sie.server.errors import http_status

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def in_process():
    from sie import Engine
    from sie.config import Settings

    e = Engine(Settings(device="cpu", cpu_precision="fp32"))
    yield e
    e.close()


@pytest.mark.parametrize("use_msgpack", [True, False])
def test_encode_matches_in_process_and_splits_over_the_item_limit(server, in_process, use_msgpack):
    client = SieClient(server.url, api_key="test-key", use_msgpack=use_msgpack)
    texts = [f"text number {i} {'filler ' * (i % 9)}" for i in range(150)]  # server limit: 64 per request
    try:
        got = client.encode_sync("all-MiniLM-L6-v2", texts, dtype="float16")
    finally:
        client.close()
    want = in_process.encode_sync(MINILM, texts, dtype="float16")
    assert len(got) == 150
    assert all(g.dense.dtype == np.float16 and g.dense.shape == (384,) for g in got)
    assert max(np.abs(g.dense.astype(np.float32) - w.dense.astype(np.float32)).max()
               for g, w in zip(got, want)) < 2e-3
    assert [g.tokens for g in got] == [w.tokens for w in want]
    assert got[0].timing is not None and got[0].timing.compute_ms > 0


def test_async_api_and_protocol(server):
    client = SieClient(server.url, api_key="test-key")
    assert isinstance(client, EngineProtocol)

    async def run():
        try:
            a, b = await asyncio.gather(client.encode(MINILM, ["one"]), client.encode(MINILM, ["two", "three"]))
            return a, b, await client.models()
        finally:
            await client.aclose()

    a, b, models = asyncio.run(run())
    assert len(a) == 1 and len(b) == 2 and any(m["id"] == MINILM for m in models)


def test_errors_carry_code_field_and_status(server):
    """The server's code and field come back on the client's error; the status is its code's, at the edge."""
    client = SieClient(server.url, api_key="test-key")
    try:
        with pytest.raises(SieError) as info:
            client.encode_sync("no-such-model", ["x"])
        assert info.value.code == "model_not_found" and http_status(info.value) == 404 and info.value.field == "model"
        with pytest.raises(SieError) as info:
            client.encode_sync(MINILM, ["x"], dims=7)
        assert info.value.code == "invalid_input" and http_status(info.value) == 400 and info.value.field == "dims"
        with pytest.raises(SieError) as info:
            SieClient(server.url, api_key="bad").encode_sync(MINILM, ["x"])
        assert info.value.code == "unauthorized" and http_status(info.value) == 401
    finally:
        client.close()


@pytest.fixture(scope="module")
def small_queue(server_factory):
    return server_factory({"SIE_QUEUE_CAPACITY": "20"}, ("--preload", MINILM))


def test_retries_429_until_admitted(small_queue):
    srv = small_queue
    client = SieClient(srv.url, max_retries=30)
    texts = ["sentence " * 300] * 16
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: client.encode_sync(MINILM, texts), range(8)))
    finally:
        client.close()
    assert all(len(r) == 16 for r in results)
    with srv.client() as c:
        refused = [line for line in c.get("/metrics").text.splitlines()
                   if line.startswith("sie_queue_rejections_total{")]
    assert refused and float(refused[0].split()[-1]) > 0  # the server did say 429, and the client waited


def test_admission_reject_raises_the_first_429_instead_of_waiting(small_queue):
    client = SieClient(small_queue.url, max_retries=30)
    texts = ["sentence " * 300] * 16

    def one(_):
        try:
            return len(client.encode_sync(MINILM, texts, admission="reject"))
        except SieError as e:
            return e

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(one, range(8)))
    finally:
        client.close()
    refused = [o for o in outcomes if isinstance(o, SieError)]
    assert refused and all(o == 16 for o in outcomes if not isinstance(o, SieError))
    assert all((e.code, http_status(e)) == ("queue_full", 429) and e.retry_after for e in refused)


def test_unreachable_server_is_a_clear_error():
    client = SieClient("http://127.0.0.1:9", max_retries=1)
    with pytest.raises(SieError, match="cannot reach http://127.0.0.1:9"):
        client.encode_sync(MINILM, ["x"])
    client.close()
