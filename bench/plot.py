"""Turn the benchmarks' saved JSON lines (bench/results/*.json) into the README's figure and table.

    python bench/encode_cpu.py | tail -1 > bench/results/encode_cpu.json
    python bench/serve.py --infinity ... | tail -1 > bench/results/serve.json
    python bench/plot.py            # writes bench/results/benchmarks.png, prints the README's table

A test checks that the README carries exactly `table()`, so its figures are the saved ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text().strip().splitlines()[-1]) if path.exists() else None


def table() -> str:
    """The README's benchmark table (markdown) from the saved results."""
    e, s, g = load("encode_cpu"), load("serve"), load("ingest")
    rows = ["| measurement | sie | anchor, same run | ratio | note |", "|---|---|---|---|---|"]
    if e:
        for key, what in (("mixed", "encode, 2,000 texts of 5–256 tokens, default `mixed` precision"),
                          ("short", "encode, 1,000 short sentences, `mixed`"),
                          ("mixed_fp32", "encode, 2,000 texts, `fp32`"),
                          ("mixed_int8", "encode, 2,000 texts, `int8` (opt-in)")):
            r = e[key]
            rows.append(f"| {what} | {r['ours_per_s']} texts/s | sentence-transformers {r['baseline_per_s']} | "
                        f"{r['ratio']}× | min cos {r['min_cos']} vs fp32 reference |")
    if s:
        t, sat = s["texts_per_s"], s["saturation"]
        http_load = f"HTTP, {s['clients']} clients × 1–32 texts"
        if t.get("infinity"):
            rows += [f"| {http_load}, default | {t['sie']} texts/s | infinity-emb {t['infinity']} | "
                     f"{s['vs_infinity']}× | `/v1/embeddings` on both |",
                     f"| {http_load}, `fp32` | {t['sie_fp32']} texts/s | infinity-emb {t['infinity']} | "
                     f"{s['vs_infinity_fp32']}× | |"]
        if t.get("sie_server"):
            rows.append(f"| {http_load}, default | {t['sie']} texts/s | sie-server 0.10.1 (Superlinked) "
                        f"{t['sie_server']} | {s['vs_sie_server']}× | `/v1/embeddings` on both |")
        rows += [f"| {http_load}, cross-request batching off | {t['sie_unbatched']} texts/s | sie batched "
                 f"{t['sie']} | {s['vs_unbatched']}× (batched/unbatched) | |",
                 f"| one short request: p50 HTTP − p50 in-process | {s['p50_overhead_ms']} ms | | | |",
                 f"| three resident models, interleaved | | one model alone | {s['three_models_ratio']}× | |",
                 f"| host-tier swap-in / cold load | | | {s['swap_in_ratio']} | CPU: the host tier is a copy |",
                 f"| saturation at 10× capacity ({sat['offered_rps']} req/s offered) | "
                 f"{sat['admitted']} admitted, {sat['rejected_429']} got 429, {sat['other']} other | | | "
                 f"admitted p99 per segment {', '.join(f'{v / 1000:.1f}' for v in sat['p99_ms_per_segment'])} s; "
                 f"RSS {sat['rss_mib_start']} → {' → '.join(map(str, sat['rss_mib_after_each_segment']))} MiB |"]
    if g:
        rows.append(f"| ingest: `sie run`, {g['chunks']:,} chunks → LanceDB, whole process | "
                    f"{g['sie_chunks_per_s']} chunks/s | hand-written sentence-transformers + LanceDB script "
                    f"{g['baseline_chunks_per_s']} | {g['ratio']}× | min cos {g['min_cos']} |")
    return "\n".join(rows)


def main() -> None:
    encode, serve = load("encode_cpu"), load("serve")
    panels = [p for p in (encode, serve) if p]
    if not panels:
        raise SystemExit(f"no results in {RESULTS}")
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4), squeeze=False)
    col = 0
    if encode:
        ax = axes[0][col]
        rows = [("sentence-\ntransformers", encode["mixed"]["baseline_per_s"]),
                ("sie fp32", encode["mixed_fp32"]["ours_per_s"]),
                (f"sie {encode['mixed']['precision']}\n(default)", encode["mixed"]["ours_per_s"]),
                ("sie int8", encode["mixed_int8"]["ours_per_s"])]
        ax.bar([r[0] for r in rows], [r[1] for r in rows], color=["#999", "#6a9", "#2a7", "#174"])
        ax.set_title(f"In-process encode, MiniLM-L6, {encode['threads']} CPU threads\n"
                     f"2,000 texts of 5–256 tokens (texts/s, higher is better)")
        for i, (_, v) in enumerate(rows):
            ax.text(i, v, f"{v:.0f}", ha="center", va="bottom")
        col += 1
    if serve:
        ax = axes[0][col]
        t = serve["texts_per_s"]
        rows = [(k, v, c) for k, v, c in (("infinity-emb", t.get("infinity"), "#999"),
                                          ("sie-server\n(Superlinked)", t.get("sie_server"), "#bbb"),
                                          ("sie unbatched", t.get("sie_unbatched"), "#9bd"),
                                          ("sie fp32", t.get("sie_fp32"), "#6a9"),
                                          ("sie (default)", t.get("sie"), "#2a7")) if v]
        ax.bar([r[0] for r in rows], [r[1] for r in rows], color=[r[2] for r in rows])
        ax.set_title(f"HTTP serving, {serve['clients']} clients, 1–32 texts/request\n(texts/s, higher is better)")
        for i, (_, v, _) in enumerate(rows):
            ax.text(i, v, f"{v:.0f}", ha="center", va="bottom")
    fig.tight_layout()
    out = RESULTS / "benchmarks.png"
    fig.savefig(out, dpi=110)
    print(out)
    print(table())


if __name__ == "__main__":
    main()
