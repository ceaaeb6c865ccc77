"""The step contract: a step says on its class and config what it makes and where it may stand, and the spec,
`sie plan`, the sinks' schema and the runners read only that. The proof is a step written here, `letters`
(a letter-frequency vector, no model), added by its registry line alone: it shapes the sinks' schema, is
written and searched by real runs, and its ordering rule gives an exact message. The rules the registered
steps declare (one per pipeline, after the search, ...) are checked here message by message."""

from __future__ import annotations

import asyncio
import math
import textwrap
from typing import Any

import pytest
from pipeline_helpers import ingest, open_sink_of, write_corpus, write_pipeline
from pydantic import Field

from pipelines.errors import SpecError
from pipelines.json_schema import pipeline_schema
from pipelines.models import ModelDirectory
from pipelines.plan import check_sinks, describe_steps
from pipelines.query import QueryRunner
from pipelines.spec import load_pipeline, parse_pipeline
from pipelines.steps import INGEST_STEPS, QUERY_STEPS
from pipelines.steps.base import Chunk, IngestStep, QueryState, QueryStep, StepConfig, VectorOutput
from pipelines.steps.rules import After, named
from pipelines.vectors import sink_schema

ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def letter_vector(text: str) -> list[float]:
    counts = [1.0 + text.lower().count(c) for c in ALPHABET]   # +1: never the zero vector
    norm = math.sqrt(sum(x * x for x in counts))
    return [x / norm for x in counts]


class LettersConfig(StepConfig):
    vector: str = Field("letters", description="Record vector name.")

    def vector_outputs(self, info: Any = None) -> dict[str, VectorOutput]:
        return {self.vector: VectorOutput({"kind": "dense", "dim": len(ALPHABET), "distance": "cosine"},
                                          "vector", "vector")}

    def metadata_outputs(self) -> list[str]:
        return ["letters_total"]


class LettersStep(IngestStep):
    name = "letters"
    config_class = LettersConfig
    rules = (After(named("chunk"), "letters describes chunks: put it after steps[{other}]"),)

    def apply(self, chunks: list[Chunk]) -> list[Chunk]:
        for chunk in chunks:
            chunk.vectors[self.config.vector] = letter_vector(chunk.text)
            chunk.metadata["letters_total"] = sum(ch.isalpha() for ch in chunk.text)
        return chunks


class QueryLettersStep(QueryStep):
    name = "letters"
    config_class = LettersConfig
    bounded = False

    async def run(self, state: QueryState, options: dict[str, Any]) -> None:
        state.vectors[self.config.vector] = letter_vector(state.text)


@pytest.fixture
def letters(monkeypatch):
    """`letters` registered the way a new step is: one line per registry."""
    monkeypatch.setitem(INGEST_STEPS, "letters", (__name__, "LettersStep"))
    monkeypatch.setitem(QUERY_STEPS, "letters", (__name__, "QueryLettersStep"))


def problems(text: str, tmp_path) -> list[str]:
    with pytest.raises(SpecError) as e:
        parse_pipeline(textwrap.dedent(text), "p.yaml", tmp_path)
    return [str(p) for p in e.value.problems]


INGEST = """\
    name: letters
    source: {type: files, root: ./docs}
    steps:
      - chunk: {by: paragraphs, size: 1}
      - letters: {}
    sinks:
      - {type: lancedb, uri: ./lance, collection: letters}
"""


def test_a_new_step_that_declares_a_vector_shapes_the_sink_schema(letters, tmp_path):
    p = parse_pipeline(textwrap.dedent(INGEST), "p.yaml", tmp_path)   # no encode step: letters makes the vectors
    assert sink_schema(p, ModelDirectory([])) == {"vectors": {"letters": {"kind": "dense", "dim": 26,
                                                                          "distance": "cosine"}}}
    assert describe_steps(p)[1] == "steps[1] letters: (defaults) · vectors: letters (dense) · metadata: letters_total"
    ingest_steps = pipeline_schema("ingest")["properties"]["steps"]["items"]["oneOf"]
    assert [next(iter(o["properties"])) for o in ingest_steps][-1] == "letters"


def test_a_new_steps_ordering_rule_and_vector_name_are_checked_like_any_other(letters, tmp_path):
    after_chunk = INGEST.replace("  - chunk: {by: paragraphs, size: 1}\n      - letters: {}\n",
                                 "  - letters: {}\n      - chunk: {by: paragraphs, size: 1}\n")
    assert problems(after_chunk, tmp_path) == [
        "p.yaml:4:14 steps[0].letters: letters describes chunks: put it after steps[1]"]
    same_name = INGEST.replace("- letters: {}", "- encode: {model: tiny/embed}\n      - letters: {vector: dense}")
    assert problems(same_name, tmp_path) == [
        "p.yaml:6:23 steps[2].letters.vector: vector name 'dense' is also made by steps[1]"]
    nothing = INGEST.replace("      - letters: {}\n", "")
    assert problems(nothing, tmp_path) == [
        "p.yaml:4:3 steps: an ingest pipeline needs an encode or letters step: sinks store vectors"]
    by_tokens = INGEST.replace("{by: paragraphs, size: 1}", "{by: tokens}")   # letters has no model to lend
    assert problems(by_tokens, tmp_path) == [
        "p.yaml:4:12 steps[0].chunk: needs tokenizer: (a model name); there is no encode step to take it from"]


def test_a_new_steps_vectors_are_written_searched_and_planned(letters, engine, tmp_path):
    """Ingest with encode + letters into LanceDB, then a query pipeline that searches the letters vector."""
    docs = {"a.md": "zzz zebra buzz\n\nplain words here", "b.md": "aaa banana"}
    write_corpus(tmp_path / "docs", docs)
    path = write_pipeline(tmp_path, INGEST.replace("- letters: {}", "- encode: {model: tiny/embed}\n      "
                                                                     "- letters: {}"))
    report = ingest(path, engine)
    assert report.state == "succeeded", report.errors
    sink = open_sink_of(path)
    try:
        stored = sink.ensure().model_dump(mode="json")["vectors"]
        assert {n: (v["kind"], v["dim"]) for n, v in stored.items()} == {"dense": ("dense", 64),
                                                                         "letters": ("dense", 26)}
    finally:
        sink.close()
    query = write_pipeline(tmp_path, """\
        name: letters-search
        kind: query
        steps:
          - letters: {}
          - search: {sink: {type: lancedb, uri: ./lance, collection: letters}, vector: letters, limit: 3}
    """, "query.yaml")
    p = load_pipeline(query)
    planned, rows = check_sinks(p, ModelDirectory([]))
    assert planned == [] and rows[0]["status"] == "ok" and rows[0]["schema"]["letters"]["dim"] == 26
    runner = QueryRunner(p, engine)
    try:
        answer = asyncio.run(runner.query("fizz buzz zzz"))
    finally:
        runner.close()
    texts = [r["text"] for r in answer["results"]]
    chunks = ["zzz zebra buzz", "plain words here", "aaa banana"]
    want = sorted(chunks, key=lambda t: -sum(a * b for a, b in zip(letter_vector(t), letter_vector("fizz buzz zzz"))))
    assert texts == want
    assert answer["results"][0]["metadata"]["letters_total"] == 12


def test_a_search_needs_a_vector_made_before_it_by_any_step_that_makes_vectors(letters, tmp_path):
    text = """\
        name: q
        kind: query
        steps:
          - search: {sink: {type: lancedb, uri: ./lance, collection: letters}, vector: letters}
          - letters: {}
    """
    assert problems(text, tmp_path) == [
        "p.yaml:4:13 steps[0].search: needs an encode step before it (the query's vector)",
        "p.yaml:4:80 steps[0].search.vector: 'letters' is not made by an encode or letters step before it (they "
        "make nothing)"]


# The rules the registered steps declare, each message exact (the broken/ files hold the others).
@pytest.mark.parametrize("text, expected", [
    ("""\
        name: d
        source: {type: files, root: ./docs}
        steps:
          - chunk: {by: sentences}
          - chunk: {by: paragraphs}
          - encode: {model: tiny/embed}
        sinks:
          - {type: lancedb, uri: ./lance, collection: d}
    """, ["p.yaml:5:12 steps[1].chunk: only one chunk step per pipeline (the first is steps[0])"]),
    ("""\
        name: d
        source: {type: files, root: ./docs}
        steps:
          - chunk: {by: tokens}
        sinks:
          - {type: lancedb, uri: ./lance, collection: d}
    """, ["p.yaml:4:3 steps: an ingest pipeline needs an encode step: sinks store vectors",
          "p.yaml:4:12 steps[0].chunk: needs tokenizer: (a model name); there is no encode step to take it from"]),
    ("""\
        name: q
        kind: query
        steps:
          - encode: {model: tiny/embed}
          - trim: {max_tokens: 100}
          - search: {sink: {type: lancedb, uri: ./lance, collection: d}}
          - rerank: {model: tiny/rerank}
          - rerank: {model: tiny/rerank}
          - extract_filters: {lexicon: {team: [Platform]}}
          - extract_filters: {lexicon: {team: [Payments]}}
    """, ["p.yaml:5:11 steps[1].trim: trim works on search results: put it after steps[2]",
          "p.yaml:8:13 steps[4].rerank: only one rerank step per query pipeline",
          "p.yaml:9:22 steps[5].extract_filters: filters must be known before the search: put it before steps[2]",
          "p.yaml:10:22 steps[6].extract_filters: only one extract_filters step per query pipeline"]),
    ("""\
        name: q
        kind: query
        steps:
          - encode: {model: tiny/embed}
          - search: {sink: {type: lancedb, uri: ./lance, collection: d}}
          - search: {sink: {type: lancedb, uri: ./lance, collection: e}}
          - trim: {max_tokens: 100}
          - trim: {max_tokens: 200}
    """, ["p.yaml:6:13 steps[2].search: only one search step per query pipeline",
          "p.yaml:8:11 steps[4].trim: only one trim step per query pipeline"]),
], ids=["one-chunk", "no-vectors-no-tokenizer", "query-order", "one-search-one-trim"])
def test_the_registered_steps_rules_give_exact_messages(text, expected, tmp_path):
    assert problems(text, tmp_path) == expected
