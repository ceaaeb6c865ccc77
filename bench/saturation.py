"""bench/serve.py's saturation phase alone, for one server configuration: a quicker way to compare scheduler
settings side by side (e.g. SIE_BATCH_SLICE=0 against 0.1) than the whole serving benchmark.

    python bench/saturation.py [--segments 3] [--seconds 10] [--env SIE_BATCH_SLICE=0.1 ...]

It learns the server's closed-loop throughput (16 clients, 5 s), measures one interactive client's idle
latency (5 s), then runs `segments` segments of open-loop bulk arrivals (`priority: batch`, requests of 8
texts) at 10x that throughput while the interactive client keeps sending one short text at a time. The load
generator runs on the same machine as the server, as in bench/serve.py.
Last line: {"bench": "saturation", ...}: interactive p50/p99 idle and busy, bulk requests admitted and
refused, bulk p99, and the server's mean batch size and compute time per batch over the busy phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve
from corpus import mixed_corpus, short_corpus


def quantile_ms(values: list[float], q: float) -> float | None:
    return round(1000 * sorted(values)[int(len(values) * q)], 1) if values else None


def sums(metrics: str, name: str, label: str) -> dict[str, float]:
    """`{name}_sum` and `{name}_count` of a histogram, summed over its label sets that contain `label`."""
    out = {"_sum": 0.0, "_count": 0.0}
    for line in metrics.splitlines():
        m = re.match(rf"^{name}(_sum|_count)\{{([^}}]*)\}} (\S+)$", line)
        if m and label in m.group(2):
            out[m.group(1)] += float(m.group(3))
    return out


def mean_between(before: str, after: str, name: str, label: str = "") -> float | None:
    a, b = sums(after, name, label), sums(before, name, label)
    count = a["_count"] - b["_count"]
    return round((a["_sum"] - b["_sum"]) / count, 4) if count else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server (repeatable)")
    args = ap.parse_args()
    env = dict(e.split("=", 1) for e in args.env)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(serve.minilm_path()) / "tokenizer.json"))
    texts = mixed_corpus(tok, n=2000) + short_corpus(tok, n=1000)
    work = Path(tempfile.mkdtemp(prefix="sie-bench-saturation-"))
    serve.write_extra_cards(work)
    server = serve.start_sie(work, "saturation", args.threads, **env)
    try:
        throughput = asyncio.run(serve.closed_loop(server.url, texts, 5, 16, [serve.MODEL], 0))["texts_per_s"]
        idle = asyncio.run(serve.interactive_probe(server.url, 5))
        before = httpx.get(server.url + "/metrics").text
        busy, segments = [], []

        async def segment(seed: int) -> dict:
            bulk, probe = await asyncio.gather(
                serve.open_loop(server.url, texts, args.seconds, 10 * throughput / 8, seed),
                serve.interactive_probe(server.url, args.seconds))
            busy.extend(probe)
            return bulk

        for i in range(args.segments):
            segments.append(asyncio.run(segment(7 + i)))
        after = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    print(json.dumps({
        "bench": "saturation", "env": env, "threads": args.threads, "closed_loop_texts_per_s": round(throughput, 1),
        "interactive_idle_p50_ms": quantile_ms(idle, 0.5), "interactive_idle_p99_ms": quantile_ms(idle, 0.99),
        "interactive_p50_ms": quantile_ms(busy, 0.5), "interactive_p99_ms": quantile_ms(busy, 0.99),
        "interactive_requests": len(busy),
        "bulk_admitted": sum(s["admitted"] for s in segments), "bulk_429": sum(s["rejected_429"] for s in segments),
        "bulk_p99_ms": serve.p99_ms([t for s in segments for t in s["admitted_s"]]),
        "mean_batch_tokens": mean_between(before, after, "sie_batch_tokens"),
        "mean_compute_s_per_batch": mean_between(before, after, "sie_phase_duration_seconds", 'phase="compute"'),
    }), flush=True)


if __name__ == "__main__":
    main()
