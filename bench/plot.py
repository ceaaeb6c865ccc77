"""Turn the benchmarks' saved JSON lines (bench/results/*.json) into the README's figure.

    python bench/encode_cpu.py | tail -1 > bench/results/encode_cpu.json
    python bench/serve.py --infinity ... | tail -1 > bench/results/serve.json
    python bench/plot.py            # writes bench/results/benchmarks.png
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


def main() -> None:
    encode, serve = load("encode_cpu"), load("serve")
    panels = [p for p in (encode, serve) if p]
    if not panels:
        raise SystemExit(f"no results in {RESULTS}")
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
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
        rows = [(k, v) for k, v in (("infinity-emb", t.get("infinity")), ("sie unbatched", t.get("sie_unbatched")),
                                    ("sie fp32", t.get("sie_fp32")), ("sie (default)", t.get("sie"))) if v]
        ax.bar([r[0] for r in rows], [r[1] for r in rows], color=["#999", "#9bd", "#6a9", "#2a7"][-len(rows):])
        ax.set_title(f"HTTP serving, {serve['clients']} clients, 1–32 texts/request\n(texts/s, higher is better)")
        for i, (_, v) in enumerate(rows):
            ax.text(i, v, f"{v:.0f}", ha="center", va="bottom")
    fig.tight_layout()
    out = RESULTS / "benchmarks.png"
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
