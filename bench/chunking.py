"""Chunking quality: `chunk: {by: tokens}` vs `{by: structure}` (with and without `prefix_section`), as
recall@5 of a chunk that holds the answer, with the bundled all-MiniLM-L6-v2.

The corpus is what the project ships: the eight handbook pages (examples/data/handbook) as Markdown and
rendered to PDF, HTML and DOCX by examples/pdf-to-qdrant/make_pdfs.py (fpdf2 with the headings in the
outline, markdown-it-py inside a page with navigation and a footer, python-docx), plus README.md and
docs/*.md. QUESTIONS below name each answer's document and its exact span. A chunk is relevant when it
comes from that document and holds the whole span (whitespace collapsed: a PDF breaks lines where it
wants), so a span a chunker cuts in two has no relevant chunk, which is part of what is measured.

The real code path: one `sie run` per chunking config (pipelines.runner.IngestRunner in process, one
Engine for all: the files source parses every format, the chunk step splits, the encode step embeds,
LanceDB stores), then the questions are encoded by the same Engine as a query pipeline's encode step does
(`is_query`) and searched by exact cosine top-5 over the stored vectors, in memory, once per format: the
pool is that format's eight handbook files plus README.md and docs/*.md (so the Markdown, PDF, HTML and
DOCX handbooks never crowd each other's top 5).

README.md and docs/ are part of the corpus, so editing them moves the figures (their chunks are every
pool's distractors too): a few lines added to the README moved single configs by up to 0.017 of recall@5,
one question counted in each of the four formats. With 60 questions, read differences under ~0.03 as noise.
Runs on the same files give the same figures.

Usage: python bench/chunking.py [--threads 2] [--sizes 128,256]
Per-config lines, then: {"bench": "chunking", "questions": ..., "configs": {...}, ...}
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "all-MiniLM-L6-v2"
FORMATS = ("md", "pdf", "html", "docx")

# (document, question, the exact answer span). A handbook page is named by its stem (it is asked in every
# format); other documents by their path in the repository.
QUESTIONS: list[tuple[str, str, str]] = [
    ("vacation", "How many paid vacation days does a full-time employee get?",
     "receives 25 days of paid vacation per calendar year"),
    ("vacation", "How many vacation days can I carry over into next year?",
     "Up to 5 unused vacation days can be carried over"),
    ("vacation", "When do carried-over vacation days expire?", "Carried-over days expire on March 31"),
    ("vacation", "How far ahead must I request a long vacation?",
     "at least two weeks ahead for absences longer than three days"),
    ("vacation", "When do I need a doctor's note for sick leave?",
     "from the fourth consecutive day a doctor's note is required"),
    ("vacation", "How long is parental leave?", "16 weeks of fully paid parental leave"),
    ("remote-work", "In which cities does the company have offices?", "offices in Berlin, Lisbon and Toronto"),
    ("remote-work", "What are the core hours when meetings happen?",
     "at least four hours of overlap between 10:00 and 16:00"),
    ("remote-work", "How long can I work from another country?",
     "You can work from another country for up to 30 days per year"),
    ("remote-work", "How often does a team meet in person?", "twice a year for a three-day offsite"),
    ("expenses", "How long do I have to submit receipts?", "within 30 days of the purchase"),
    ("expenses", "Are old expense reports still reimbursed?", "Reports older than 90 days are not reimbursed"),
    ("expenses", "What is the hotel limit in London?", "250 EUR in London, New York, Zurich and Tokyo"),
    ("expenses", "How much can I spend on meals on a business trip?", "up to 60 EUR per day, alcohol excluded"),
    ("expenses", "What is the budget for home office equipment?", "a one-time budget of 800 EUR"),
    ("expenses", "Who can get a corporate card?", "travel more than four times a year can request a corporate card"),
    ("onboarding", "What happens on my first day at work?",
     "You receive your laptop and security key from IT at 9:00"),
    ("onboarding", "When does a new engineer ship their first change?",
     "Ship a small change to production by Friday"),
    ("onboarding", "How long do new hires shadow the on-call engineer?",
     "Shadow the on-call engineer of your team for two days"),
    ("onboarding", "How large is the yearly learning budget?", "yearly learning budget of 1,500 EUR"),
    ("oncall", "When does the on-call rotation hand over?", "handing over on Monday at 10:00"),
    ("oncall", "How quickly must I acknowledge a page?", "Acknowledge a page within 5 minutes"),
    ("oncall", "What is a SEV2?", "SEV2: degraded service for some customers"),
    ("oncall", "How are on-call weeks compensated?", "a flat allowance of 300 EUR per week"),
    ("oncall", "When is the postmortem due after an incident?", "blameless postmortem within five working days"),
    ("payments", "When are customers billed?", "billed monthly in advance on the first day of the month"),
    ("payments", "How often is a failed card payment retried?", "retries after 3, 5 and 7 days"),
    ("payments", "What happens after the third failed payment?",
     "the workspace becomes read-only until the balance is paid"),
    ("payments", "Are annual plans refunded?", "Refunds for annual plans are prorated within the first 30 days"),
    ("payments", "How long does a refund take to arrive?", "five to ten business days"),
    ("payments", "When is VAT added to an invoice?", "VAT is added for customers in the European Union"),
    ("search-architecture", "How big are the chunks documents are split into?",
     "chunks of about 256 tokens with a small overlap"),
    ("search-architecture", "How many chunks does the vector database return for a query?",
     "returns the 50 nearest chunks"),
    ("search-architecture", "How are dense and keyword retrieval combined?",
     "combined with keyword (sparse) retrieval by reciprocal rank fusion"),
    ("search-architecture", "How large is the context given to the answer model?",
     "a context of at most 2,000 tokens"),
    ("search-architecture", "What is the latency budget for retrieval?",
     "Retrieval must answer within 150 ms at the 95th percentile"),
    ("security", "How long must a password be?", "Passwords must be at least 16 characters"),
    ("security", "Is two-factor authentication required?",
     "Two-factor authentication with a hardware security key is mandatory"),
    ("security", "How soon must I install operating system updates?", "within seven days of a security release"),
    ("security", "What do I do if my laptop is stolen?",
     "Report a lost or stolen laptop to the security team within one hour"),
    ("security", "May I copy customer data to my laptop?", "Never copy customer data to a laptop"),
    ("security", "What happens if I click a link in a phishing simulation?",
     "triggers a short training, not a penalty"),
    ("README.md", "What does SIE_QUEUE_CAPACITY set?", "sequences each lane of a model's queue holds before 429"),
    ("README.md", "How long may in-flight work finish after SIGTERM?",
     "on SIGTERM, how long in-flight work may finish"),
    ("README.md", "What does the int8 CPU precision do?",
     "`int8` runs every linear layer int8 with SmoothQuant calibrated at load time"),
    ("README.md", "How do I replay items that were dead-lettered?",
     "retries then dead-letters what still fails (`sie run --retry-dlq`)"),
    ("README.md", "What happens to the index when I change the embedding model?",
     "Changing the model never leaves a half-old, half-new index"),
    ("README.md", "How many old collections are kept for rollback after a reindex?",
     "one old collection kept for rollback"),
    ("README.md", "What happens to a scanned PDF without a text layer?", "A scan is refused"),
    ("README.md", "What is the default memory budget on CPU?", "half the RAM on CPU"),
    ("docs/architecture.md", "Which sie modules may the pipelines package not import?",
     "It never imports `sie.runtime`, `sie.catalog` or `sie.models`"),
    ("docs/architecture.md", "What happens when a forward pass runs out of memory?",
     "evict an idle model, then split the batch, then fail only that batch"),
    ("docs/architecture.md", "How does the batcher share the device between the interactive and batch lanes?",
     "takes the interactive lane first, one batch in `BULK_EVERY` from the batch lane while both wait"),
    ("docs/compatibility.md", "Which API roles map to the query prompt?",
     "`query` / `search_query` → the query prompt"),
    ("docs/compatibility.md", "What is the base URL for TEI clients?", "Base URL: `http://host:8080/tei/<model>`"),
    ("docs/pipeline-spec.md", "How many chunks go through the model steps in one batch by default?",
     "Chunks per batch through the model steps."),
    ("docs/pipeline-spec.md", "How many tries does a batch get before the dead-letter file?",
     "Tries per batch and sink before the dead-letter file."),
    ("docs/pipeline-spec.md", "What does the trim step's truncate_last option do?",
     "Cut the first candidate that does not fit to fill the budget."),
    ("docs/api.md", "How do I get the vocabulary string of each sparse weight?",
     "Add the vocabulary string of each sparse entry."),
    ("docs/api.md", "Which metrics route does the server expose?", "## `GET /metrics`"),
]


def squash(text: str) -> str:
    return " ".join(text.split())


def configs(sizes: list[int]) -> dict[str, dict]:
    out = {}
    for size in sizes:
        overlap = size // 8
        out[f"tokens-{size}"] = {"by": "tokens", "size": size, "overlap": overlap}
        out[f"structure-{size}"] = {"by": "structure", "size": size, "overlap": overlap}
        out[f"structure-{size}+prefix"] = {"by": "structure", "size": size, "overlap": overlap,
                                           "prefix_section": True}
    return out


def write_corpus(root: Path) -> None:
    """root/<format>/<page>.<format> for the handbook, root/README.md and root/docs/*.md."""
    sys.path.insert(0, str(ROOT / "examples" / "pdf-to-qdrant"))
    from make_pdfs import HANDBOOK, render_docx, render_html, render_pdf, title_of

    for fmt in FORMATS:
        (root / fmt).mkdir(parents=True)
    for page in sorted(HANDBOOK.glob("*.md")):
        markdown, title = page.read_text(), title_of(page.read_text())
        (root / "md" / page.name).write_text(markdown)
        (root / "pdf" / f"{page.stem}.pdf").write_bytes(render_pdf([markdown], title))
        (root / "html" / f"{page.stem}.html").write_bytes(
            render_html(markdown, title, f"https://intranet.example/handbook/{page.stem}"))
        (root / "docx" / f"{page.stem}.docx").write_bytes(render_docx(markdown, title))
    shutil.copy(ROOT / "README.md", root / "README.md")
    shutil.copytree(ROOT / "docs", root / "docs", ignore=lambda d, names: [n for n in names if not n.endswith(".md")])


def pipeline_yaml(name: str, chunk: dict) -> str:
    return json.dumps({"name": name, "source": {"type": "files", "root": "../corpus"},
                       "steps": [{"chunk": chunk}, {"encode": {"model": MODEL}}],
                       "sinks": [{"type": "lancedb", "uri": "./lance", "collection": "chunks"}]})


def ingest(folder: Path, name: str, chunk: dict, engine) -> tuple[list[dict], float]:
    """Run the pipeline; the stored rows (source, text, vector) and the run's seconds."""
    import lancedb
    import numpy as np

    from pipelines.runner import IngestRunner
    from pipelines.spec import load_pipeline
    from pipelines.store import open_store

    folder.mkdir()
    (folder / "pipeline.yaml").write_text(pipeline_yaml(name, chunk))  # JSON is YAML
    store = open_store(folder / "runs.sqlite")
    try:
        report = IngestRunner(load_pipeline(folder / "pipeline.yaml", strict_env=True), engine, store).run()
    finally:
        store.close()
    if report.state != "succeeded" or report.counters["refusals"]:
        raise SystemExit(f"{name}: run {report.state}: {report.errors} {report.counters['refusals']}")
    table = lancedb.connect(str(folder / "lance")).open_table("chunks").to_arrow()
    rows = []
    for text, meta, vector in zip(table.column("text").to_pylist(), table.column("metadata").to_pylist(),
                                  table.column("dense").to_numpy(zero_copy_only=False), strict=True):
        rows.append({"source": json.loads(meta)["source"], "text": squash(text),
                     "vector": np.asarray(vector, dtype=np.float32)})
    return rows, report.seconds


def in_pool(source: str, fmt: str) -> bool:
    return source.startswith(f"{fmt}/") or "/" not in source or source.startswith("docs/")


def is_handbook(doc: str) -> bool:
    return "." not in doc   # a page's stem; other documents are named by their file name


def document_of(doc: str, fmt: str) -> str:
    return f"{fmt}/{doc}.{fmt}" if is_handbook(doc) else doc


def evaluate(rows: list[dict], questions: list[tuple[str, str, str]], qvecs, k: int = 5) -> dict:
    import numpy as np

    out: dict = {"by_format": {}}
    hits_all, split_all, total = 0, 0, 0
    handbook_hits, handbook_total, docs_hits, docs_total = 0, 0, 0, 0
    for fmt in FORMATS:
        pool = [r for r in rows if in_pool(r["source"], fmt)]
        matrix = np.stack([r["vector"] for r in pool])
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        hits = 0
        for (doc, _, span), q in zip(questions, qvecs, strict=True):
            source, span = document_of(doc, fmt), squash(span)
            relevant = {i for i, r in enumerate(pool) if r["source"] == source and span in r["text"]}
            split_all += not relevant
            top = np.argsort(-(matrix @ q))[:k]
            hit = bool(relevant.intersection(top.tolist()))
            hits += hit
            if is_handbook(doc):
                handbook_hits, handbook_total = handbook_hits + hit, handbook_total + 1
            else:
                docs_hits, docs_total = docs_hits + hit, docs_total + 1
        out["by_format"][fmt] = round(hits / len(questions), 3)
        hits_all, total = hits_all + hits, total + len(questions)
    out["recall_at_5"] = round(hits_all / total, 3)
    out["handbook"] = round(handbook_hits / handbook_total, 3)
    out["readme_docs"] = round(docs_hits / docs_total, 3)
    out["no_chunk_holds_span"] = split_all
    return out


def check_spans(corpus: Path) -> list[tuple[str, str, str]]:
    """The questions whose span is in their document as the files source reads it (every format); a span
    the docs no longer hold is reported and left out, so an edited README does not skew the figures."""
    from pipelines.sources import FileSource
    from pipelines.spec import FilesSource

    texts = {d.id: squash(d.text) for d in FileSource(FilesSource(root=str(corpus))).documents()}
    kept = []
    for q in QUESTIONS:
        missing = [fmt for fmt in FORMATS if squash(q[2]) not in texts.get(document_of(q[0], fmt), "")]
        if missing:
            print(f"skipped (span not in {q[0]} as read from {', '.join(missing)}): {q[2]!r}", file=sys.stderr)
        else:
            kept.append(q)
    return kept


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="128,256", help="chunk sizes in tokens (overlap: size / 8)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["SIE_THREADS"] = str(args.threads)
    from sie import Engine

    started = time.perf_counter()
    results: dict[str, dict] = {}
    engine = Engine()
    try:
        with tempfile.TemporaryDirectory(prefix="sie-bench-chunking-") as tmp:
            work = Path(tmp)
            write_corpus(work / "corpus")
            questions = check_spans(work / "corpus")
            import numpy as np

            qvecs = np.stack([item.dense for item in engine.encode_sync(MODEL, [q[1] for q in questions],
                                                                         is_query=True)])
            qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
            for name, chunk in configs([int(s) for s in args.sizes.split(",")]).items():
                rows, seconds = ingest(work / name, name.replace("+", "-"), chunk, engine)
                result = {"chunks": len(rows), "ingest_s": round(seconds, 2), **evaluate(rows, questions, qvecs)}
                results[name] = result
                formats = " ".join(f"{f} {v:.3f}" for f, v in result["by_format"].items())
                print(f"{name:<22} recall@5 {result['recall_at_5']:.3f} (handbook {result['handbook']:.3f}, "
                      f"README+docs {result['readme_docs']:.3f}; {formats}) chunks {len(rows)} "
                      f"no-chunk-holds-span {result['no_chunk_holds_span']} ingest {seconds:.1f}s", flush=True)
    finally:
        engine.close()
    print(json.dumps({"bench": "chunking", "model": MODEL, "questions": len(questions),
                      "asked": len(questions) * len(FORMATS), "formats": list(FORMATS), "k": 5,
                      "search": "exact cosine top-5 in memory over the LanceDB-stored vectors",
                      "threads": args.threads, "seconds": round(time.perf_counter() - started, 1),
                      "configs": results}))


if __name__ == "__main__":
    main()
