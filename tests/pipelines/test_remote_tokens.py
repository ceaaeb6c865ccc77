"""A pipeline whose engine is a server counts tokens on that server: `sie plan`'s tokenizer check, chunking
by tokens and `trim` all work on a host whose own catalog does not know the models (so it could not load
their tokenizers or weights), with the counts of the model's own tokenizer."""

from __future__ import annotations

import json
import subprocess

from pipeline_helpers import open_sink_of, write_corpus, write_pipeline
from servers import SIE
from tokenizers import Tokenizer

from pipelines.steps.chunk import windows

INGEST = """\
    name: remote-tokens
    engine: {url}
    source: {{type: files, root: ./docs}}
    steps:
      - chunk: {{by: tokens, size: 8, overlap: 2}}
      - encode: {{model: tiny/embed}}
    sinks:
      - {{type: lancedb, uri: ./lance, collection: docs}}
"""
QUERY = """\
    name: remote-search
    kind: query
    engine: {url}
    steps:
      - encode: {{model: tiny/embed}}
      - search: {{sink: {{type: lancedb, uri: ./lance, collection: docs}}, limit: 6}}
      - trim: {{max_tokens: 20, truncate_last: true, dedupe: none}}
"""
DOCS = {"a.md": "Backups run nightly at 02:00 UTC; restores are tested every quarter by the on-call engineer.",
        "b.md": "Ünïcödé names, e-mail addresses (ops@example.com) and don't-split-me words all count as tokens."}


def sie(*args: str, env: dict, cwd) -> subprocess.CompletedProcess:
    out = subprocess.run([SIE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return out


def test_a_host_without_the_models_chunks_and_trims_with_the_servers_tokenizer(tmp_path, cli_env, engine_server,
                                                                                minilm_path):
    tok = Tokenizer.from_file(str(minilm_path / "tokenizer.json"))  # the tiny models' tokenizer
    tok.no_padding()
    tok.no_truncation()
    nobody = tmp_path / "no-cards"
    nobody.mkdir()
    env = {**cli_env, "SIE_CATALOG_DIRS": str(nobody)}  # this host's catalog: the built-in cards, no tiny/*
    write_corpus(tmp_path / "docs", DOCS)
    ingest = write_pipeline(tmp_path, INGEST.format(url=engine_server.url))
    write_pipeline(tmp_path, QUERY.format(url=engine_server.url), "search.yaml")

    planned = json.loads(sie("plan", "pipeline.yaml", "--json", env=env, cwd=tmp_path).stdout)
    assert planned["engine"] == engine_server.url
    report = json.loads(sie("run", "pipeline.yaml", "--json", env=env, cwd=tmp_path).stdout.splitlines()[-1])
    assert report["state"] == "succeeded", report

    want = set()
    for text in DOCS.values():
        units = [(s, e) for s, e in tok.encode(text, add_special_tokens=False).offsets if e > s]
        want |= {text[s:e] for s, e in windows(units, 8, 2)}
    sink = open_sink_of(ingest)
    try:
        stored = {h.text for h in sink.search([1.0] * 64, limit=100)}
    finally:
        sink.close()
    assert stored == want and len(want) > 4

    answer = json.loads(sie("query", "search.yaml", "when do backups run?", "--json", env=env, cwd=tmp_path).stdout)
    counts = [r["tokens"] for r in answer["results"]]
    assert counts == [len(tok.encode(r["text"], add_special_tokens=False).ids) for r in answer["results"]]
    assert answer["tokens"]["after"] == sum(counts) <= 20 < answer["tokens"]["before"]
    assert answer["retrieved"] == 6 and len(answer["results"]) >= 2
