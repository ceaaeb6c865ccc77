"""Lanes and deadlines over HTTP and the SDK: `priority` in a request's params (top level on the compat
routes), the X-SIE-Timeout-Ms header, 504 `deadline_exceeded` when the budget runs out, clear 4xx for bad
values, the `lane` label on the queue metrics and the event-loop lag histogram."""

from __future__ import annotations

import re

import pytest

from sie import SieClient
from sie.errors import SieError
from sie.server.errors import http_status

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
LONG = ["sentence " * 200 for _ in range(64)]  # 64 × ~200 tokens (under SIE_MAX_CHARS): seconds of CPU work


@pytest.fixture(scope="module")
def http(server):
    with server.client() as c:
        yield c


def test_native_routes_take_a_lane_and_a_timeout(http):
    r = http.post(f"/v1/encode/{MINILM}", json={"items": [{"text": "bulk"}], "params": {"priority": "batch"}},
                  headers={"X-SIE-Timeout-Ms": "60000"})
    assert r.status_code == 200, r.text
    r = http.post(f"/v1/score/{MINILM}", json={"query": {"text": "q"}, "items": [{"text": "a"}],
                                               "params": {"priority": "interactive"}})
    assert r.status_code == 200, r.text
    r = http.post("/v1/embeddings", json={"model": MINILM, "input": "x", "priority": "batch"},
                  headers={"X-SIE-Timeout-Ms": "60000.5"})
    assert r.status_code == 200, r.text


def test_a_bad_lane_is_a_422_naming_the_field(http):
    r = http.post(f"/v1/encode/{MINILM}", json={"items": [{"text": "x"}], "params": {"priority": "urgent"}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "params.priority", r.text
    r = http.post("/v1/rerank", json={"model": MINILM, "query": "q", "documents": ["a"], "priority": "now"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "priority", r.text


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan", "3600001"])
def test_a_bad_timeout_header_is_a_400_naming_it(http, value):
    r = http.post(f"/v1/score/{MINILM}", json={"query": {"text": "q"}, "items": [{"text": "a"}]},
                  headers={"X-SIE-Timeout-Ms": value})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == "X-SIE-Timeout-Ms" and repr(value) in r.json()["error"]["message"]


def test_a_request_past_its_timeout_is_a_504_and_its_work_is_dropped(http):
    r = http.post(f"/v1/encode/{MINILM}", json={"items": [{"text": t} for t in LONG]},
                  headers={"X-SIE-Timeout-Ms": "50"})
    assert r.status_code == 504, r.text
    error = r.json()["error"]
    assert error["code"] == "deadline_exceeded" and error["field"] == "timeout_ms"
    assert f"encode on '{MINILM}'" in error["message"] and "timeout_ms=50" in error["message"]
    assert http.post(f"/v1/encode/{MINILM}", json={"items": [{"text": "after"}]}).status_code == 200
    depth = re.findall(rf'^sie_queue_depth{{lane="interactive",model="{MINILM}"}} (\S+)$',
                       http.get("/metrics").text, re.M)
    assert depth == ["0.0"]  # nothing of the expired request is left queued


def test_the_server_exports_its_event_loop_lag(http):
    text = http.get("/metrics").text
    count = float(re.search(r"^sie_event_loop_lag_seconds_count (\S+)$", text, re.M).group(1))
    assert count > 10  # the 10 ms ticker has been ticking since start-up
    assert 'sie_event_loop_lag_seconds_bucket{le="0.01"}' in text


def test_the_sdk_sends_the_lane_and_one_budget_for_the_whole_call(server):
    client = SieClient(server.url, api_key="test-key")
    try:
        items = client.encode_sync(MINILM, ["a bulk text"], priority="batch", timeout_ms=60000)
        assert items[0].dense.shape == (384,)
        with pytest.raises(SieError) as err:
            client.encode_sync(MINILM, LONG, timeout_ms=50)
        assert err.value.code == "deadline_exceeded" and http_status(err.value) == 504
    finally:
        client.close()


def test_the_timeout_header_bounds_the_compat_routes_too(http):
    r = http.post("/v2/rerank", json={"model": MINILM, "query": "q", "documents": LONG},
                  headers={"X-SIE-Timeout-Ms": "50"})
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded", r.text
