"""Backpressure and failure answers on live servers: 503 while loading, 429 when a queue is full,
503 when memory cannot be found, dropped work for clients that hung up, and the SIGTERM drain."""

from __future__ import annotations

import concurrent.futures
import re
import signal
import threading
import time

import httpx
import pytest

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
LONG = ["sentence " * 300 for _ in range(32)]  # 32 × 256 tokens after truncation


def metric(client: httpx.Client, name: str, **labels) -> float:
    text = client.get("/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}{{(.*)}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            total += float(m.group(2))
    assert want is not None
    return total


@pytest.fixture(scope="module")
def busy(server_factory):
    """No preload, a short load wait, a tiny queue."""
    return server_factory({"SIE_LOAD_WAIT_TIMEOUT": "0.05", "SIE_QUEUE_CAPACITY": "40", "SIE_MAX_QUEUE_WAIT": "1000"})


def until_ok(c: httpx.Client, model: str = MINILM) -> None:
    deadline = time.monotonic() + 60
    while c.post(f"/v1/encode/{model}", json={"items": [{"text": "warm"}]}).status_code != 200:
        assert time.monotonic() < deadline, "model never became ready"
        time.sleep(0.1)


def test_a_request_for_a_loading_model_waits_then_gets_503_with_retry_after(busy):
    with busy.client() as c:
        r = c.post(f"/v1/encode/{MINILM}", json={"items": [{"text": "first"}]})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "model_loading" and int(r.headers["retry-after"]) >= 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = c.post(f"/v1/encode/{MINILM}", json={"items": [{"text": "first"}]})
            if r.status_code == 200:
                break
            time.sleep(0.1)
        assert r.status_code == 200


def test_full_queue_answers_429_with_retry_after_and_keeps_serving(busy):
    with busy.client() as c:
        until_ok(c)

        def send(i):
            return c.post(f"/v1/encode/{MINILM}", json={"items": [{"text": t} for t in LONG[:16]]})

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(send, range(12)))
        codes = [a.status_code for a in answers]
        assert 429 in codes and 200 in codes and set(codes) <= {200, 429}, codes
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.json()["error"]["code"] == "queue_full" and int(refused.headers["retry-after"]) >= 1
        assert "capacity 40" in refused.json()["error"]["message"]
        assert metric(c, "sie_queue_rejections_total", model=MINILM) == codes.count(429)
        assert c.post(f"/v1/encode/{MINILM}", json={"items": [{"text": "after"}]}).status_code == 200


def test_admission_bounds_the_queue_wait_of_admitted_requests(server_factory):
    srv = server_factory({"SIE_MAX_QUEUE_WAIT": "0.5"}, ("--preload", MINILM))
    with srv.client() as c:
        for _ in range(3):  # the batcher learns this model's throughput
            assert c.post(f"/v1/encode/{MINILM}", json={"items": [{"text": t} for t in LONG[:8]]}).status_code == 200

        def send(i):
            t = time.monotonic()
            r = c.post(f"/v1/encode/{MINILM}", json={"items": [{"text": t} for t in LONG[:8]]})
            return r, time.monotonic() - t

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(send, range(32)))
    refused = [r for r, _ in answers if r.status_code == 429]
    admitted = [r.json()["items"][0]["timing"]["queue_ms"] for r, _ in answers if r.status_code == 200]
    assert refused and admitted
    assert "SIE_MAX_QUEUE_WAIT" in refused[0].json()["error"]["message"]
    assert max(admitted) < 4000, admitted  # 0.5 s budget, judged on an estimate of the throughput


def test_work_of_a_disconnected_client_is_dropped_before_compute(busy):
    with busy.client() as c:
        until_ok(c)
        # Timed against this machine's own speed: the second request gives up halfway through the first one's
        # compute. It is 8 sequences, so it fits the queue (capacity 40) behind the first one's 24 still waiting.
        started = time.monotonic()
        assert c.post(f"/v1/encode/{MINILM}", json={"items": [{"text": t} for t in LONG]}).status_code == 200
        took = time.monotonic() - started
        before = metric(c, "sie_batch_items_sum", model=MINILM)
        first = threading.Thread(target=lambda: c.post(f"/v1/encode/{MINILM}",
                                                       json={"items": [{"text": t} for t in LONG]}))
        first.start()
        time.sleep(took * 0.2)
        with pytest.raises(httpx.ReadTimeout):  # gives up while queued behind the first request
            httpx.post(f"{busy.url}/v1/encode/{MINILM}", json={"items": [{"text": t + "x"} for t in LONG[:8]]},
                       timeout=took * 0.5)
        first.join()
        time.sleep(0.5)
        assert metric(c, "sie_batch_items_sum", model=MINILM) - before == len(LONG)


def test_no_memory_for_a_model_is_503_resource_exhausted(server_factory):
    tight = server_factory({"SIE_MEMORY_BUDGET": "1MiB"})
    with tight.client() as c:
        r = c.post("/v1/embeddings", json={"model": MINILM, "input": "x"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "resource_exhausted"
        assert "device budget is 1 MiB" in r.json()["error"]["message"] and r.headers["retry-after"]
        assert c.get("/healthz").status_code == 200


def test_sigterm_drains_in_flight_requests_then_exits(server_factory):
    srv = server_factory({"SIE_DRAIN_SECONDS": "30"}, ("--preload", MINILM))
    result = {}

    def long_request():
        result["r"] = httpx.post(f"{srv.url}/v1/encode/{MINILM}", json={"items": [{"text": t} for t in LONG]},
                                 timeout=60)

    t = threading.Thread(target=long_request)
    t.start()
    time.sleep(0.3)
    start = time.monotonic()
    code = srv.stop()
    t.join()
    assert result["r"].status_code == 200 and len(result["r"].json()["items"]) == len(LONG)
    # uvicorn re-raises the signal once drained, so the exit status says "ended by SIGTERM"
    assert code == -signal.SIGTERM and time.monotonic() - start < 30
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{srv.url}/healthz", timeout=1)
