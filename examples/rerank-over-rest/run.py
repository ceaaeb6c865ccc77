"""REST triggers end to end: start `sie serve --pipelines`, post documents to an ingest pipeline, poll the
run, then ask the query pipeline (rerank + token budget) and show how much context the agent was spared.

    python examples/rerank-over-rest/run.py          # or start the server yourself, see README.md
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from models import best_available  # noqa: E402

DOCS = HERE.parent / "data" / "handbook"
SIE = str(Path(sys.executable).parent / "sie")
QUESTION = "How quickly must I acknowledge a page when I am on call?"


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    model = best_available("BAAI/bge-reranker-base")
    env = {**os.environ, "RERANK_MODEL": model, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([SIE, "serve", "--port", str(port), "--pipelines", str(HERE / "pipelines"),
                               "--log-level", "warning"], env=env)
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            for _ in range(600):
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            print("pipelines:", [p["name"] for p in http.get("/v1/pipelines").json()["data"]])
            records = [{"id": p.stem, "text": p.read_text(), "metadata": {"file": p.name}}
                       for p in sorted(DOCS.glob("*.md"))]
            run = http.post("/v1/pipelines/docs/runs", json={"records": records},
                            headers={"Idempotency-Key": "handbook-v1"})
            run_id = run.json()["id"]
            print(f"POST /v1/pipelines/docs/runs → {run.status_code}, run {run_id}")
            while (state := http.get(f"/v1/runs/{run_id}").json())["state"] in ("queued", "running"):
                time.sleep(0.2)
            print(f"GET /v1/runs/{run_id} → {state['state']}: {json.dumps(state['counters'])}")
            answer = http.post("/v1/pipelines/docs-search/query", json={"query": QUESTION}).json()
        print(f"\nQ: {QUESTION}  (rerank model: {model}, {answer['rerank']})")
        for i, r in enumerate(answer["results"], 1):
            print(f"{i}. [{r['score']:.3f}] {r['metadata']['file']}: {' '.join(r['text'].split())[:100]}...")
        t = answer["tokens"]
        print(f"\ncontext: {t['before']} tokens retrieved → {t['after']} kept (budget {t['budget']}), "
              f"{100 * (1 - t['after'] / t['before']):.0f}% less for the agent to read")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
