"""`make demo` until the pipelines land: encode a few sentences with the bundled model, print similarities."""

from __future__ import annotations

import time

import numpy as np
from rich.console import Console
from rich.table import Table

from sie import Engine

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a string instrument.",
    "The stock market fell sharply on Monday.",
    "Shares dropped at the start of the week.",
    "A cat is sleeping on the sofa.",
]


def main() -> None:
    console = Console()
    engine = Engine()
    start = time.perf_counter()
    results = engine.encode_sync(MODEL, SENTENCES)
    elapsed = time.perf_counter() - start
    loaded = engine.model(MODEL)
    vectors = np.stack([r.dense for r in results])
    sims = vectors @ vectors.T
    table = Table(title=f"cosine similarity — {MODEL} ({loaded.precision} on {loaded.device})")
    table.add_column("")
    for i in range(len(SENTENCES)):
        table.add_column(str(i))
    for i, s in enumerate(SENTENCES):
        cells = [f"[bold]{sims[i, j]:.2f}[/bold]" if i != j and sims[i, j] > 0.5 else f"{sims[i, j]:.2f}"
                 for j in range(len(SENTENCES))]
        table.add_row(f"{i}: {s}", *cells)
    console.print(table)
    console.print(f"{len(SENTENCES)} sentences, {sum(r.tokens for r in results)} tokens, "
                  f"{vectors.shape[1]} dims, {elapsed * 1000:.0f} ms including the model load "
                  f"({loaded.load_seconds * 1000:.0f} ms)")
    engine.close()


if __name__ == "__main__":
    main()
