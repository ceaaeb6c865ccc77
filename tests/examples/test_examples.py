"""Every example runs end to end here (in a copy, so the repository stays clean) and says what its README
promises: rows written, the top hit for a known question, tokens saved."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIE = str(Path(sys.executable).parent / "sie")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "SIE_CPU_PRECISION": "fp32", "COLUMNS": "160"}


@pytest.fixture()
def examples(tmp_path) -> Path:
    """A copy of examples/ without earlier outputs."""
    dest = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", dest, ignore=shutil.ignore_patterns(".out", ".sie", "__pycache__"))
    return dest


def sie(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run([SIE, *args], capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def python(script: Path, *args: str, env: dict | None = None) -> str:
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                         env={**ENV, **(env or {})}, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def run_report(path: Path, env: dict | None = None) -> dict:
    return json.loads(sie("run", str(path), "--json", "--progress", "none", env=env).stdout.strip().splitlines()[-1])


def ask(path: Path, question: str, env: dict | None = None) -> dict:
    return json.loads(sie("query", str(path), question, "--json", env=env).stdout)


def sink_counts(report: dict) -> dict:
    (counts,) = report["counters"]["sinks"].values()
    return counts


def test_ingest_docs_lancedb(examples):
    ex = examples / "ingest-docs-lancedb"
    first = run_report(ex / "pipeline.yaml")
    assert first["state"] == "succeeded" and sink_counts(first)["written"] == 18
    again = run_report(ex / "pipeline.yaml")
    assert sink_counts(again)["written"] == 0 and sink_counts(again)["skipped"] == 8  # unchanged files
    answer = ask(ex / "query.yaml", "How many vacation days can I carry over?")
    assert answer["results"][0]["metadata"]["source"] == "vacation.md"
    assert "Up to 5 unused vacation days" in " ".join(r["text"] for r in answer["results"])
    t = answer["tokens"]
    assert t["budget"] == 200 and 0 < t["after"] <= 200 < t["before"]
    assert "lancedb:handbook │    8 │       0 │      18 │      18" in (ex / "expected-output.txt").read_text()


def test_hybrid_qdrant(examples):
    ex = examples / "hybrid-qdrant"
    assert sink_counts(run_report(ex / "pipeline.yaml"))["written"] == 18
    hybrid = ask(ex / "query.yaml", "What happens with a SEV2?")
    dense = ask(ex / "dense-only-query.yaml", "What happens with a SEV2?")
    assert hybrid["results"][0]["metadata"]["source"] == dense["results"][0]["metadata"]["source"] == "oncall.md"
    assert hybrid["results"][0]["score"] == pytest.approx(1.0)  # first in both rankings of the fusion
    from connectors.registry import open_sink

    sink = open_sink({"type": "qdrant", "path": str(ex / ".out" / "qdrant"), "collection": "handbook"})
    try:
        sink.ensure(None)
        assert {n: v.kind for n, v in sink.schema.vectors.items()} == {"dense": "dense", "lexical": "sparse"}
    finally:
        sink.close()
    sie("validate", str(ex / "pipeline-splade-colbert.yaml"))


def test_pdf_to_qdrant(examples):
    ex = examples / "pdf-to-qdrant"
    assert not list(ex.rglob("*.pdf"))  # made by the script, never committed
    python(ex / "make_pdfs.py")
    assert sorted(p.name for p in (ex / ".out" / "pdfs").iterdir()) == [
        "engineering-handbook.pdf", "payments-handbook.pdf", "people-handbook.pdf"]
    report = run_report(ex / "pipeline.yaml")
    assert report["state"] == "succeeded" and sink_counts(report)["written"] == 38
    answer = ask(ex / "query.yaml", "How many vacation days can I carry over?")
    top = answer["results"][0]
    assert "Up to 5 unused vacation days can be carried over" in top["text"]
    assert {k: top["metadata"][k] for k in ("source", "path", "page", "page_last", "section", "title", "pages")} == {
        "source": "people-handbook.pdf", "path": "people-handbook.pdf", "page": 1, "page_last": 1,
        "section": ["Vacation and time off", "Carrying days over"], "title": "People handbook", "pages": 4}
    start, end = top["metadata"]["page_chars"]
    assert 0 < start < end  # offsets into page 1's text: the chunk starts at its heading, below the title
    hotel = ask(ex / "query.yaml", "What is the hotel limit in London?")["results"][0]["metadata"]
    assert (hotel["source"], hotel["page"], hotel["section"]) == ("people-handbook.pdf", 3,
                                                                  ["Travel and expenses", "Limits"])
    out = python(ex / "run.py")  # makes the PDFs again: same text, so the run skips all three
    assert re.search(r"^1\. \[0\.\d+\] people-handbook\.pdf, page 1, Vacation and time off > Carrying days over$",
                     out, re.M), out


def test_chroma_server(examples):
    out = python(examples / "chroma-server" / "run.py")
    assert "collection 'handbook' holds 18 chunks" in out
    hits = re.findall(r"^\d\. (\S+) \(distance", out, re.M)
    assert hits[:2] == ["expenses.md", "expenses.md"], out


def test_weaviate_says_what_it_needs(examples):
    env = {k: v for k, v in ENV.items() if k != "WEAVIATE_URL"}
    out = subprocess.run([sys.executable, str(examples / "weaviate" / "run.py")], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0 and "WEAVIATE_URL is not set" in out.stdout and "Nothing was run" in out.stdout
    sie("validate", str(examples / "weaviate" / "pipeline.yaml"), str(examples / "weaviate" / "query.yaml"),
        env={"WEAVIATE_URL": "http://weaviate.example:8080"})


def test_rerank_over_rest(examples):
    out = python(examples / "rerank-over-rest" / "run.py")
    assert "POST /v1/pipelines/docs/runs → 202" in out and "→ succeeded" in out
    assert re.search(r'"written": 23', out), out
    assert re.search(r"^1\. \[[0-9.]+\] oncall\.md:", out, re.M), out
    assert "'status': 'ok'" in out
    before, after, budget = map(int, re.search(r"context: (\d+) tokens retrieved → (\d+) kept \(budget (\d+)\)",
                                               out).groups())
    assert budget == 250 and 0 < after <= budget < before


def test_agent_context(examples):
    out = python(examples / "agent-context" / "run.py")
    agree = int(re.search(r"agrees with the notes' own prefixes: (\d+)/20", out).group(1))
    assert agree >= 14, out
    assert 'entities → filter: {\'team\': [\'Payments\']} → {"team": {"$in": ["Payments"]}}' in out
    context = re.findall(r"^  \[(\w+)/[\w -]+\] (.*)$", out, re.M)
    assert context and all(team == "Payments" for team, _ in context)
    assert "retried after 3, 5 and 7 days" in context[0][1]
    before, after, budget = map(int, re.search(r"tokens: (\d+) retrieved → (\d+) in the context \(budget (\d+)\)",
                                               out).groups())
    assert 0 < after <= budget == 150 and after < before
    sie("validate", str(examples / "agent-context" / "query-gliner.yaml"))


def test_every_example_runs_as_is_without_the_variables_it_mentions(examples):
    """A new user runs `sie run` / `sie query` on an example without exporting anything: every ${VAR} the
    examples name has a default (run.py scripts set better models; that path is tested above)."""
    from connectors.config import env_names
    from pipelines.spec import load_pipeline

    files = sorted(examples.rglob("*.yaml"))
    named = {n for f in files for n in env_names(f.read_text())}
    assert {"CLASSIFIER", "RERANKER", "RERANK_MODEL", "CHROMA_URL", "WEAVIATE_URL"} <= named
    bare = {k: v for k, v in ENV.items() if k not in named}
    for f in files:
        load_pipeline(f, env=bare, strict_env=True)  # what `sie run` / `sie plan` do: unset without default fails
    ex = examples / "agent-context"
    out = subprocess.run([SIE, "run", str(ex / "pipeline.yaml"), "--json", "--progress", "none"], env=bare,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["state"] == "succeeded" and sink_counts(report)["written"] == 20
    answer = subprocess.run([SIE, "query", str(ex / "query.yaml"), "Payments retries", "--json"], env=bare,
                            capture_output=True, text=True, timeout=300)
    assert answer.returncode == 0 and json.loads(answer.stdout)["results"], answer.stdout + answer.stderr


def test_quickstart():
    out = python(ROOT / "examples" / "quickstart.py")
    assert "cosine similarity" in out and "5 sentences" in out
