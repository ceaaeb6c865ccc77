"""Make the PDFs, ingest them with `sie run`, then ask a question with `sie query` and print each hit as a
citation: file, page(s) and section."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIE = str(Path(sys.executable).parent / "sie")
QUESTION = "How many vacation days can I carry over?"


def cite(metadata: dict) -> str:
    pages = metadata["page"] if metadata["page"] == metadata["page_last"] else \
        f"{metadata['page']}-{metadata['page_last']}"
    return f"{metadata['source']}, page {pages}, {' > '.join(metadata['section']) or '(no heading)'}"


def main() -> None:
    subprocess.run([sys.executable, str(HERE / "make_pdfs.py")], check=True)
    subprocess.run([SIE, "run", str(HERE / "pipeline.yaml"), "--progress", "none"], check=True)
    question = " ".join(sys.argv[1:]) or QUESTION
    out = subprocess.run([SIE, "query", str(HERE / "query.yaml"), question, "--json"], check=True,
                         capture_output=True, text=True)
    print(f"Q: {question}")
    for rank, hit in enumerate(json.loads(out.stdout)["results"], 1):
        text = " ".join(hit["text"].split())
        print(f"{rank}. [{hit['score']:.3f}] {cite(hit['metadata'])}")
        print(f"   {text[:110]}{'...' if len(text) > 110 else ''}")


if __name__ == "__main__":
    main()
