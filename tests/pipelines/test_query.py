"""Query pipelines over a real LanceDB collection: rerank reorders by the score model (and falls back to
the first-stage order on timeout or error), trim packs to the token budget exactly, duplicates go, and
entities found in the question become `where` filters. Tokens are checked against the tokenizer itself."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from pipeline_helpers import ingest, write_pipeline
from tokenizers import Tokenizer

from connectors.filters import parse_where
from pipelines.errors import PipelineError
from pipelines.paths import matches
from pipelines.query import QueryRunner
from pipelines.spec import load_pipeline
from sie.server.errors import http_status

#: The registered steps this module tests, and the prefix of the tests that do ("": every test here runs it),
#: for test_spec.py's registry rule.
STEPS_TESTED = {("query", "extract_filters"): "test_extract_filters_", ("query", "encode"): "",
                ("query", "search"): "", ("query", "rerank"): "test_rerank_", ("query", "trim"): "test_trim_"}
PENGUINS = "Emperor penguins huddle together in large groups to keep warm during the Antarctic winter."
DOCS = [
    ("penguins", "Ada", PENGUINS),
    ("penguins-copy", "Ada", PENGUINS),
    ("penguins-near", "Bob", PENGUINS.replace("large", "big")),
    ("taxes", "Bob", "File your income tax return before the April deadline to avoid late penalties."),
    ("python", "Cy", "Python lists are mutable sequences, while tuples cannot be changed after creation."),
    ("coffee", "Dee", "Espresso is brewed by forcing hot water through finely ground coffee beans."),
    ("volcano", "Eve", "Volcanic eruptions eject lava, ash and gases from deep inside the earth."),
    ("soccer", "Fay", "A soccer match lasts ninety minutes, split into two halves of forty-five."),
    ("long", "Gus", " ".join(["Glaciers move slowly downhill under their own weight, carving valleys."] * 6)),
]
QUESTION = "how do penguins stay warm in winter?"


@pytest.fixture(scope="module")
def collection(tmp_path_factory, engine):
    folder = tmp_path_factory.mktemp("query")
    (folder / "docs").mkdir()
    (folder / "docs" / "docs.jsonl").write_text("\n".join(json.dumps({"id": i, "author": a, "text": t})
                                                          for i, a, t in DOCS))
    path = write_pipeline(folder, """\
        name: kb
        source: {type: files, root: ./docs, id_field: id}
        steps:
          - encode: {model: tiny/embed}
        sinks:
          - {type: lancedb, uri: ./lance, collection: kb}
    """, "ingest.yaml")
    assert ingest(path, engine).state == "succeeded"
    return folder


@pytest.fixture(scope="module")
def count(minilm_path):
    tok = Tokenizer.from_file(str(minilm_path / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()      # MiniLM's tokenizer.json pads to 128 tokens
    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)


def ask(folder, engine, steps: str, text: str = QUESTION, **options) -> dict:
    path = write_pipeline(folder, f"""\
        name: kb-search
        kind: query
        steps:
          - encode: {{model: tiny/embed}}
          - search: {{sink: {{type: lancedb, uri: ./lance, collection: kb}}, limit: 20}}
        {steps}
    """.replace("\n        \n", "\n"), "query.yaml")
    runner = QueryRunner(load_pipeline(path), engine)
    try:
        return asyncio.run(runner.query(text, **options))
    finally:
        runner.close()


def test_rerank_reorders_by_the_score_model(collection, engine):
    answer = ask(collection, engine, "  - rerank: {model: test/minilm-rerank, timeout_ms: 60000}")
    assert answer["rerank"]["status"] == "ok" and answer["retrieved"] == len(DOCS)
    results = answer["results"]
    assert results[0]["metadata"]["source"] in ("docs.jsonl#penguins", "docs.jsonl#penguins-copy",
                                                "docs.jsonl#penguins-near")
    truth = engine.score_sync("test/minilm-rerank", QUESTION, [r["text"] for r in results])
    assert [s.index for s in truth] == list(range(len(results)))             # ours is the model's own order
    assert [r["rerank_score"] for r in results] == pytest.approx([s.score for s in truth], abs=1e-5)
    first_stage = [r["first_stage_rank"] for r in results]
    assert first_stage != sorted(first_stage)                                 # it really moved things


def test_rerank_timeout_falls_back_to_the_first_stage_order(collection, engine):
    answer = ask(collection, engine, "  - rerank: {model: test/minilm-rerank, timeout_ms: 1}")
    assert answer["rerank"]["status"] == "timeout" and "first-stage order kept" in answer["rerank"]["message"]
    results = answer["results"]
    assert [r["first_stage_rank"] for r in results] == list(range(len(DOCS)))
    assert all(r["rerank_score"] is None and r["score"] == r["first_stage_score"] for r in results)
    # The engine is not left wedged by the abandoned call.
    assert ask(collection, engine, "  - rerank: {model: test/minilm-rerank, timeout_ms: 60000}")["rerank"][
        "status"] == "ok"


def test_a_query_deadline_that_leaves_nothing_usable_is_a_504_naming_the_step(collection, engine):
    with pytest.raises(PipelineError) as err:
        ask(collection, engine, "", deadline_ms=1)  # the query's own encode cannot finish in 1 ms
    e = err.value
    assert http_status(e) == 504 and e.code == "deadline_exceeded" and e.field == "deadline_ms"
    assert e.message.startswith("encode: the query's deadline_ms (1 ms) ran out during this step")


def test_the_deadline_defaults_to_the_rerank_timeout_plus_the_first_stage_allowance(collection, engine):
    rerank = "  - rerank: {model: test/minilm-rerank, timeout_ms: 60000}"
    assert ask(collection, engine, rerank)["deadline_ms"] == 60_000 + 10_000
    assert ask(collection, engine, "")["deadline_ms"] == 10_000
    assert ask(collection, engine, rerank, deadline_ms=30_000)["deadline_ms"] == 30_000  # a query's own


def test_rerank_error_falls_back_too(collection, engine):
    answer = ask(collection, engine, "  - rerank: {model: tiny/embed, top_k: 3}")
    assert answer["rerank"]["status"] == "error" and "unsupported_capability" in answer["rerank"]["message"]
    assert [r["first_stage_rank"] for r in answer["results"]] == [0, 1, 2]


def test_trim_respects_the_budget_exactly(collection, engine, count):
    budget = 45
    answer = ask(collection, engine, f"  - trim: {{max_tokens: {budget}, tokenizer: all-MiniLM-L6-v2, dedupe: none}}")
    kept = answer["results"]
    used = sum(count(r["text"]) for r in kept)
    assert answer["tokens"] == {"before": sum(count(t) for _, _, t in DOCS), "after": used, "budget": budget}
    assert 0 < used <= budget and all(r["tokens"] == count(r["text"]) for r in kept)
    # Greedy packing: whatever was left out does not fit in what is left of the budget.
    left_out = [t for _, _, t in DOCS if t not in [r["text"] for r in kept]]
    assert all(count(t) > budget - used for t in left_out)
    # A per-query budget overrides the step's, and truncate_last fills it to the token.
    full = ask(collection, engine, "  - trim: {max_tokens: 45, tokenizer: all-MiniLM-L6-v2, truncate_last: true}",
               max_tokens=100)
    assert full["tokens"]["after"] == 100 == sum(count(r["text"]) for r in full["results"])
    last = full["results"][-1]["text"]
    assert any(t.startswith(last) and t != last for _, _, t in DOCS)


def test_trim_drops_duplicates_and_low_scores(collection, engine):
    texts = lambda a: [r["text"] for r in a["results"]]  # noqa: E731
    none = texts(ask(collection, engine, "  - trim: {max_tokens: 5000, dedupe: none}"))
    exact = texts(ask(collection, engine, "  - trim: {max_tokens: 5000, dedupe: exact}"))
    near = texts(ask(collection, engine, "  - trim: {max_tokens: 5000, dedupe: near, near_threshold: 0.8}"))
    assert len(none) == len(DOCS) and len(exact) == len(DOCS) - 1 and len(near) == len(DOCS) - 2
    assert sum("Emperor penguins" in t for t in near) == 1
    scores = [r["score"] for r in ask(collection, engine, "  - trim: {max_tokens: 5000}")["results"]]
    cut = sorted(scores)[len(scores) // 2]
    kept = ask(collection, engine, f"  - trim: {{max_tokens: 5000, dedupe: none, min_score: {cut}}}")["results"]
    assert kept and all(r["score"] >= cut for r in kept) and len(kept) < len(DOCS)


def test_extract_filters_turn_entities_in_the_question_into_where(collection, engine):
    question = "Ada Lovelace met Charles Babbage in London."
    unfiltered = ask(collection, engine, "", text=question)
    assert unfiltered["where"] is None and len(unfiltered["results"]) == len(DOCS)
    with_filters = write_pipeline(collection, """\
        name: kb-filtered
        kind: query
        steps:
          - extract_filters: {model: tiny/ner, labels: [PER, ORG], threshold: 0.0, fields: {PER: author, ORG: author},
                              combine: any}
          - encode: {model: tiny/embed}
          - search: {sink: {type: lancedb, uri: ./lance, collection: kb}, limit: 20}
    """, "filtered.yaml")
    runner = QueryRunner(load_pipeline(with_filters), engine)
    try:
        result = asyncio.run(runner.query(question))
    finally:
        runner.close()
    (ref,) = engine.extract_sync("tiny/ner", [question], labels=["PER", "ORG"], threshold=0.0)
    found: dict[str, list[str]] = {}
    for e in ref.entities:
        if e.text not in found.setdefault(e.label, []):
            found[e.label].append(e.text)
    assert found and result["entities"] == found                      # the tiny tagger does find something
    parts = [{"author": {"$in": texts}} for texts in found.values()]
    assert result["where"] == (parts[0] if len(parts) == 1 else {"$or": parts})
    node = parse_where(result["where"])
    assert all(matches(node, r["metadata"]) for r in result["results"])
    expected = [m for _, m, _ in DOCS if matches(node, {"author": m})]
    assert len(result["results"]) == len(expected)


def test_bad_queries_are_refused_with_the_field(collection, engine):
    for kwargs, field in (({"text": "  "}, "query"), ({"text": "x" * 2001}, "query"), ({"limit": 0}, "limit"),
                          ({"max_tokens": -1}, "max_tokens"), ({"where": {"a": {"$regex": "x"}}}, "where.a.$regex")):
        with pytest.raises(PipelineError) as e:
            ask(collection, engine, "", **kwargs)
        assert e.value.field == field, e.value.message
    assert len(ask(collection, engine, "", limit=3)["results"]) == 3
    only = ask(collection, engine, "", where={"author": "Bob"})["results"]
    assert {r["metadata"]["author"] for r in only} == {"Bob"} and len(only) == 2


def test_extract_filters_from_a_lexicon_need_no_model(collection, engine):
    with_lexicon = write_pipeline(collection, """\
        name: kb-lexicon
        kind: query
        steps:
          - extract_filters: {lexicon: {author: [Bob, Cy, Zed]}, fields: {author: author}}
          - encode: {model: tiny/embed}
          - search: {sink: {type: lancedb, uri: ./lance, collection: kb}, limit: 20}
    """, "lexicon.yaml")
    runner = QueryRunner(load_pipeline(with_lexicon), engine)
    try:
        found = asyncio.run(runner.query("what did bob write? (not Bobby)"))
        nothing = asyncio.run(runner.query("anything by Bobby?"))
    finally:
        runner.close()
    assert found["entities"] == {"author": ["Bob"]} and found["where"] == {"author": {"$in": ["Bob"]}}
    assert sorted(r["metadata"]["author"] for r in found["results"]) == ["Bob", "Bob"]
    assert nothing["where"] is None and len(nothing["results"]) == len(DOCS)


@pytest.mark.parametrize("step, message", [
    ("{model: tiny/ner, labels: [PER], lexicon: {PER: [Ada]}}", "either model (with labels) or lexicon"),
    ("{labels: [PER]}", "either model (with labels) or lexicon"),
    ("{lexicon: {PER: []}}", "lexicon.PER: expected a non-empty list"),
    ("{model: tiny/ner}", "a model needs labels"),
])
def test_extract_filters_needs_a_model_or_a_lexicon(collection, step, message):
    path = write_pipeline(collection, f"""\
        name: kb-bad
        kind: query
        steps:
          - extract_filters: {step}
          - encode: {{model: tiny/embed}}
          - search: {{sink: {{type: lancedb, uri: ./lance, collection: kb}}, limit: 20}}
    """, "bad.yaml")
    with pytest.raises(PipelineError, match=re.escape(message)):
        load_pipeline(path)
