"""A live `sie serve --pipelines` in the shape of examples/rerank-over-rest (MiniLM encodes and reranks) while
24 clients flood `/v1/score` with 64 long items each (issue 12's measurement: /healthz took 276 ms and a query
whose rerank had `timeout_ms: 1500` answered in 2.7 s): the event loop keeps serving (and a query's rerank
deadline should hold, answering with the first-stage order: not met yet).

The flood runs in its own process (its threads would otherwise share this process's GIL with the probes); its
clients back off for the Retry-After of a 429 (at most 1 s), as the published clients do, so the queue stays full
without a tight refusal loop taking one of the two cores.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from pipeline_helpers import write_pipeline

MINILM = "all-MiniLM-L6-v2"
HANDBOOK = Path(__file__).resolve().parents[2] / "examples" / "data" / "handbook"
FLOOD = textwrap.dedent("""
    import json, sys, threading, time
    import httpx
    url, seconds = sys.argv[1], float(sys.argv[2])
    long = " ".join(f"word{i % 97} of a long passage about vacation and on-call rules" for i in range(40))
    body = json.dumps({"query": {"text": "how many vacation days carry over"}, "items": [{"text": long + str(j)}
                                                                                for j in range(64)]})
    codes = {}
    def client():
        end = time.monotonic() + seconds
        with httpx.Client(timeout=120) as c:
            while time.monotonic() < end:
                try:
                    r = c.post(f"{url}/v1/score/all-MiniLM-L6-v2", content=body,
                               headers={"content-type": "application/json"})
                    code = r.status_code
                except httpx.TransportError:
                    code = "transport"
                codes[code] = codes.get(code, 0) + 1
                if code == 429:  # as the published clients do: back off for the hinted delay
                    time.sleep(min(float(r.headers.get("retry-after", 1)), 1.0))
    threads = [threading.Thread(target=client) for _ in range(24)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(json.dumps(codes))
""")


@pytest.fixture(scope="module")
def server(tmp_path_factory, pipeline_catalog):
    from servers import Server

    folder = tmp_path_factory.mktemp("flood")
    write_pipeline(folder, """\
        name: docs
        source: {type: records}
        steps:
          - chunk: {by: tokens, size: 96, overlap: 16}
          - encode: {model: all-MiniLM-L6-v2}
        sinks:
          - {type: lancedb, uri: ./lance, collection: docs}
    """, "docs.yaml")
    write_pipeline(folder, """\
        name: docs-search
        kind: query
        steps:
          - encode: {model: all-MiniLM-L6-v2}
          - search: {sink: {type: lancedb, uri: ./lance, collection: docs}, limit: 8}
          - rerank: {model: all-MiniLM-L6-v2, top_k: 5, timeout_ms: 300}
    """, "docs-search.yaml")
    s = Server({"SIE_CATALOG_DIRS": str(pipeline_catalog), "SIE_TEST_LOG_DIR": str(folder)},
               ("--pipelines", str(folder), "--preload", MINILM))
    with s.client() as c:
        records = [{"id": p.stem, "text": p.read_text()} for p in sorted(HANDBOOK.glob("*.md"))]
        run = c.post("/v1/pipelines/docs/runs", json={"records": records}).json()
        while (state := c.get(f"/v1/runs/{run['id']}").json())["state"] in ("queued", "running"):
            time.sleep(0.1)
        assert state["state"] == "succeeded", state
    yield s
    s.stop()


def query(c: httpx.Client) -> tuple[float, dict]:
    t = time.perf_counter()
    r = c.post("/v1/pipelines/docs-search/query", json={"query": "How many vacation days can I carry over?"})
    assert r.status_code == 200, r.text
    return time.perf_counter() - t, r.json()


def _queued(c: httpx.Client) -> bool:
    return any(float(v) > 0 for v in re.findall(rf'^sie_queue_depth{{lane="interactive",model="[^"]*{MINILM}"}} (\S+)$',
                                                 c.get("/metrics").text, re.M))


def under_flood(server, probe, seconds: float = 6) -> tuple[list, dict]:
    """Start the flood, wait until it queues work, call `probe(client)` repeatedly for `seconds`; returns the
    probes' results and the flood's status counts (it must still have been flooding at the end)."""
    with server.client() as c:
        for _ in range(3):  # warm: the first rerank pays for its first forward pass
            took, idle = query(c)
        assert idle["rerank"]["status"] == "ok", f"idle, the rerank took over 300 ms: {took * 1000:.0f} ms"
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, server.url, str(seconds + 6)], stdout=subprocess.PIPE,
                                 text=True)
        try:
            deadline = time.monotonic() + 30
            while not _queued(c):
                assert time.monotonic() < deadline and flood.poll() is None, "the flood never queued work"
                time.sleep(0.05)
            results = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                results.append(probe(c))
            still_flooding = flood.poll() is None
        finally:
            out, _ = flood.communicate(timeout=120)
    assert still_flooding, "the flood ended before the probes did"
    codes = json.loads(out)
    assert codes.get("200") and set(codes) <= {"200", "429"}, f"the flood's answers: {codes}"
    return results, codes


def test_under_a_score_flood_healthz_answers_within_50_ms(server):
    def healthz(c: httpx.Client) -> float:
        t = time.perf_counter()
        assert c.get("/healthz").status_code == 200
        took = time.perf_counter() - t
        time.sleep(0.02)
        return took

    times, codes = under_flood(server, healthz)
    print(json.dumps({"healthz_probes": len(times), "healthz_max_ms": round(max(times) * 1000, 1), "flood": codes}))
    assert len(times) > 100 and max(times) <= 0.05, f"/healthz took up to {max(times) * 1000:.0f} ms under the flood"


@pytest.mark.xfail(strict=False, reason=(
    "issue 12's bar (a query whose rerank has timeout_ms: 300 answers within 450 ms under the flood) is not met: "
    "measured up to 0.97-1.4 s. Its calls carry the query's deadline, go first in the queue, preempt a flood batch "
    "between layers and are tokenized on their own thread; the encode still takes 35-330 ms (its forward pass "
    "shares the two cores with the flood's tokenizing and request handling), and the answer's token counts run "
    "on the lane's tokenizer threads behind the flood's (counting takes no deadline yet)"))
def test_under_a_score_flood_a_query_keeps_its_rerank_deadline(server):
    answers, codes = under_flood(server, query)
    print(json.dumps({"queries": len(answers), "query_max_ms": round(max(t for t, _ in answers) * 1000, 1),
                      "timings": [(a["timing"], a["rerank"]["status"]) for _, a in answers], "flood": codes}))
    for took, answer in answers:
        assert took <= 0.3 + 0.15, f"a query with a 300 ms rerank timeout took {took * 1000:.0f} ms: {answer['timing']}"
        # Its calls carry the query's deadline, so they go ahead of the flood's: the rerank may well finish.
        # When it does not, the first-stage order stands.
        assert answer["rerank"]["status"] in ("ok", "timeout"), answer["rerank"]
        if answer["rerank"]["status"] == "timeout":
            assert "first-stage order kept" in answer["rerank"]["message"]
            ranks = [r["first_stage_rank"] for r in answer["results"]]
            assert ranks and ranks == list(range(len(ranks))), answer
