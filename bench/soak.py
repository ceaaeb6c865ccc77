"""Soak: one `sie serve --pipelines` under mixed traffic for minutes, with a memory budget too small for
its three models, so they keep being evicted and swapped back in. Does anything leak, fail or slow down
with time?

    python bench/soak.py [--minutes 10] [--clients 16] [--threads 2] [--budget 200MiB]

Models: the bundled all-MiniLM-L6-v2 (encode), a second card on the same weights scoring as a
bi-encoder (score), and a tiny random-weight NER tagger built from its config (extract). The device
budget holds one MiniLM and the tagger, not both MiniLMs: alternating encode and score traffic swaps
them through the host tier.

Traffic, all at once: `--clients` closed-loop clients of mixed requests (half encode of 1-16 texts,
three in ten score of a query against 4-16 texts, two in ten extract of 1-8 texts, on the native
routes); an ingest pipeline triggered over REST every 15 s, its corpus edited before each run so
every run re-encodes; one client querying a query pipeline (encode -> search -> rerank -> trim) over it.

Last line: {"bench": "soak", "requests", "errors_by_status" (only 429/503 with Retry-After are
allowed: "unexpected_errors" counts the rest), "swaps", "rss_mib_start"/"rss_mib_end", "rss_slope_mib_per_min"
(least squares over samples after the first minute), "p99_ms_per_minute", "p99_last_over_second",
"event_loop_lag_p99_ms" (from sie_event_loop_lag_seconds; null on a server without it), "ingest_runs"...}
Goals: 0 unexpected errors, RSS slope <= 1 MiB/min after warm-up, last minute's p99 <= 1.2x the second's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))   # tiny_models: a random-weight tagger
from corpus import mixed_corpus, short_corpus
from serve import MODEL, SIE, Proc, free_port, metric_sum, minilm_path

SCORER, TAGGER = "soak/minilm-score", "soak/tiny-ner"
TRIGGER_EVERY_S = 15
WARM_UP_S = 60
ALLOWED = (429, 503)   # admission control and draining: fine, when they say when to come back


def write_cards(work: Path) -> Path:
    import tiny_models

    cards = work / "cards"
    cards.mkdir(parents=True)
    labels = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-ORG", 4: "I-ORG"}
    tagger = tiny_models.build("bert", work / "tagger", Path(minilm_path()), seed=13, head="token-classification",
                               num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()})
    (cards / "score.yaml").write_text(textwrap.dedent(f"""\
        name: {SCORER}
        source: {{path: "{minilm_path()}"}}
        architecture: bert
        capabilities: {{encode: {{dense: {{dims: 384}}}}, score: {{kind: bi-encoder}}}}
        pooling: mean
        max_tokens: 256
        """))
    (cards / "ner.yaml").write_text(textwrap.dedent(f"""\
        name: {TAGGER}
        source: {{path: "{tagger}"}}
        architecture: bert
        max_tokens: 64
        capabilities: {{extract: {{kind: token-classification, threshold: 0.0}}}}
        """))
    return cards


def write_pipelines(work: Path, texts: list[str]) -> Path:
    folder = work / "pipelines"
    (folder / "docs").mkdir(parents=True)
    for i in range(40):
        write_doc(folder, i, 0, texts)
    (folder / "ingest.yaml").write_text(textwrap.dedent(f"""\
        name: soak-ingest
        source: {{type: files, root: ./docs, sync_deletions: true}}
        steps:
          - chunk: {{by: paragraphs, size: 1}}
          - encode: {{model: {MODEL}}}
        sinks:
          - {{type: lancedb, uri: ./lance, collection: soak}}
        batch: {{size: 32}}
        retry: {{attempts: 8, backoff_s: 0.5, max_backoff_s: 5}}   # 503s of a thrashing pool are expected
        """))
    (folder / "query.yaml").write_text(textwrap.dedent(f"""\
        name: soak-query
        kind: query
        steps:
          - encode: {{model: {MODEL}}}
          - search: {{sink: {{type: lancedb, uri: ./lance, collection: soak}}, limit: 20}}
          - rerank: {{model: {SCORER}, top_k: 5, timeout_ms: 3000}}
          - trim: {{max_tokens: 200}}
        """))
    return folder


def write_doc(folder: Path, i: int, version: int, texts: list[str]) -> None:
    rng = random.Random(i * 1000 + version)
    paragraphs = [rng.choice(texts) for _ in range(rng.randint(2, 6))]
    (folder / "docs" / f"doc{i:03}.md").write_text(f"doc {i} version {version}\n\n" + "\n\n".join(paragraphs))


class Tally:
    """Per request: its minute, status and latency; statuses outside ALLOWED (or without Retry-After)
    are unexpected."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.latency: dict[int, list[float]] = {}
        self.status: dict[str, int] = {}
        self.unexpected: list[str] = []

    def add(self, kind: str, r: httpx.Response | None, seconds: float, error: str | None = None) -> None:
        code = str(r.status_code) if r is not None else "transport"
        self.status[code] = self.status.get(code, 0) + 1
        if r is not None and r.status_code == 200:
            self.latency.setdefault(int((time.monotonic() - self.start) // 60), []).append(seconds)
            return
        if r is not None and r.status_code in ALLOWED and r.headers.get("retry-after"):
            return
        if len(self.unexpected) < 20:
            body = error if r is None else r.text[:300]
            self.unexpected.append(f"{kind}: {code}: {body}")
        self.status["unexpected"] = self.status.get("unexpected", 0) + 1


async def client(http: httpx.AsyncClient, w: int, texts: list[str], stop: float, tally: Tally) -> None:
    rng = random.Random(w)
    while time.monotonic() < stop:
        roll = rng.random()
        if roll < 0.5:
            kind, path = "encode", f"/v1/encode/{MODEL}"
            body = {"items": [{"text": rng.choice(texts)} for _ in range(rng.randint(1, 16))]}
        elif roll < 0.8:
            kind, path = "score", f"/v1/score/{SCORER}"
            body = {"query": {"text": rng.choice(texts)},
                    "items": [{"text": rng.choice(texts)} for _ in range(rng.randint(4, 16))]}
        else:
            kind, path = "extract", f"/v1/extract/{TAGGER}"
            body = {"items": [{"text": rng.choice(texts)} for _ in range(rng.randint(1, 8))]}
        await send(http, kind, path, body, tally, rng)


async def send(http: httpx.AsyncClient, kind: str, path: str, body: dict, tally: Tally, rng: random.Random) -> None:
    t = time.perf_counter()
    try:
        r = await http.post(path, json=body)
    except httpx.TransportError as e:
        tally.add(kind, None, 0, f"{type(e).__name__}: {e}")
        return
    tally.add(kind, r, time.perf_counter() - t)
    if r.status_code in ALLOWED:
        await asyncio.sleep(float(r.headers.get("retry-after") or 1) * (0.5 + rng.random()))


async def querier(http: httpx.AsyncClient, questions: list[str], stop: float, tally: Tally,
                  indexed: asyncio.Event) -> None:
    rng = random.Random(-1)
    await indexed.wait()    # the collection exists once the first ingest run has committed
    while time.monotonic() < stop:
        await send(http, "query", "/v1/pipelines/soak-query/query", {"query": rng.choice(questions)}, tally, rng)


async def ingester(http: httpx.AsyncClient, folder: Path, texts: list[str], stop: float, runs: list[dict],
                   indexed: asyncio.Event) -> None:
    """A run every TRIGGER_EVERY_S (after the previous one ended), with a quarter of the corpus edited."""
    version = 0
    while time.monotonic() < stop:
        r = await http.post("/v1/pipelines/soak-ingest/runs", json={})
        if r.status_code != 202:
            runs.append({"state": f"HTTP {r.status_code}", "errors": [r.text[:300]]})
            indexed.set()
            return
        run_id, began = r.json()["id"], time.monotonic()
        while (run := (await http.get(f"/v1/runs/{run_id}")).json())["state"] in ("queued", "running"):
            await asyncio.sleep(0.5)
        runs.append({"state": run["state"], "seconds": round(time.monotonic() - began, 1),
                     "read": run["counters"].get("stages", {}).get("read"), "errors": run["errors"][:3]})
        indexed.set()
        version += 1
        for i in random.Random(version).sample(range(40), 10):
            write_doc(folder, i, version, texts)
        await asyncio.sleep(max(0.0, began + TRIGGER_EVERY_S - time.monotonic()))


async def sample_rss(server: Proc, stop: float, samples: list[tuple[float, float]], start: float) -> None:
    while time.monotonic() < stop:
        samples.append((time.monotonic() - start, server.rss_mib()))
        await asyncio.sleep(5)


def lag_p99_ms(url: str) -> float | None:
    """p99 of sie_event_loop_lag_seconds (the upper bound of the bucket it falls in), or None without it."""
    buckets = []
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("sie_event_loop_lag_seconds_bucket{"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float(le), float(line.split()[-1])))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    bound = next(le for le, count in sorted(buckets) if count >= 0.99 * total)
    return None if bound == float("inf") else round(1000 * bound, 1)


def slope_per_minute(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of RSS (MiB) over time, per minute."""
    if len(samples) < 3:
        return None
    xs, ys = [t / 60 for t, _ in samples], [m for _, m in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


async def soak(url: str, server: Proc, folder: Path, texts: list[str], questions: list[str],
               args: argparse.Namespace) -> dict:
    start = time.monotonic()
    stop = start + 60 * args.minutes
    tally, runs, rss, indexed = Tally(start), [], [], asyncio.Event()
    limits = httpx.Limits(max_connections=args.clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        parts = [sample_rss(server, stop, rss, start)]
        if "native" not in args.without:
            parts += [client(http, w, texts, stop, tally) for w in range(args.clients)]
        if "query" not in args.without:
            parts.append(querier(http, questions, stop, tally, indexed))
        if "ingest" not in args.without:
            parts.append(ingester(http, folder, texts, stop, runs, indexed))
        await asyncio.gather(*parts)
    minutes = [m for m in sorted(tally.latency) if m < args.minutes]   # not the answers that came after the end
    p99 = [round(1000 * sorted(v)[int(0.99 * (len(v) - 1))], 1) for v in (tally.latency[m] for m in minutes)]
    warm = [s for s in rss if s[0] >= min(WARM_UP_S, 60 * args.minutes / 3)]
    slope = slope_per_minute(warm)
    return {"requests": sum(v for k, v in tally.status.items() if k != "unexpected"),
            "errors_by_status": {k: v for k, v in tally.status.items() if k not in ("200", "unexpected")},
            "unexpected_errors": tally.status.get("unexpected", 0), "unexpected_samples": tally.unexpected[:5],
            "rss_mib_start": round(rss[0][1], 1), "rss_mib_end": round(rss[-1][1], 1),
            "rss_slope_mib_per_min": None if slope is None else round(slope, 2),
            "rss_mib_per_minute": [round([m for t, m in rss if t < 60 * (i + 1)][-1], 1)
                                   for i in range(int(args.minutes))],
            "p99_ms_per_minute": p99,
            "p99_last_over_second": round(p99[-1] / p99[1], 2) if len(p99) >= 3 else None,
            "ingest_runs": len(runs), "ingest_runs_not_succeeded": [r for r in runs if r["state"] != "succeeded"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", default="200MiB", help="SIE_MEMORY_BUDGET: one MiniLM and the tagger, not two")
    ap.add_argument("--without", default="", help="comma-separated parts to leave out (native,query,ingest): "
                    "to find which traffic a growth comes from")
    args = ap.parse_args()
    args.without = {w for w in args.without.split(",") if w}
    if args.without - {"native", "query", "ingest"} or ("ingest" in args.without and "query" not in args.without):
        ap.error("--without: native, query, ingest (query needs ingest: it searches what the ingest wrote)")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(minilm_path()) / "tokenizer.json"))
    texts = mixed_corpus(tok, n=500) + short_corpus(tok, n=500)
    work = Path(tempfile.mkdtemp(prefix="sie-bench-soak-"))
    cards, folder = write_cards(work), write_pipelines(work, texts)
    port = free_port()
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "SIE_THREADS": str(args.threads),
           "SIE_CATALOG_DIRS": str(cards), "SIE_MEMORY_BUDGET": args.budget, "SIE_HOST_MEMORY_BUDGET": "2GiB"}
    server = Proc([SIE, "serve", "--port", str(port), "--log-level", "warning", "--pipelines", str(folder)], env,
                  f"http://127.0.0.1:{port}", "/readyz", work / "server.log")
    try:
        figures = asyncio.run(soak(server.url, server, folder, texts, short_corpus(tok, n=200, seed=2), args))
        swaps = metric_sum(server.url, "sie_model_swap_ins_total")
        evictions = metric_sum(server.url, "sie_evictions_total")
        lag = lag_p99_ms(server.url)
    finally:
        server.stop()
    line = {"bench": "soak", "minutes": args.minutes, "clients": args.clients, "threads": args.threads,
            "budget": args.budget, **({"without": sorted(args.without)} if args.without else {}),
            **figures, "swaps": int(swaps), "evictions": int(evictions), "event_loop_lag_p99_ms": lag}
    print(json.dumps(line))


if __name__ == "__main__":
    main()
