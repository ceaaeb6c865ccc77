"""The ingest steps on their own: chunk offsets that map back to the text, filter conditions that agree
with what real databases return for the same `where`, map operations, and the model steps (extract,
score) against the engine's own answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import make_record, open_sink
from connectors.filters import parse_where
from pipelines.paths import matches
from pipelines.steps.base import Chunk, StepContext
from pipelines.steps.chunk import ChunkConfig, ChunkStep, windows
from pipelines.steps.extract import ExtractConfig, ExtractStep
from pipelines.steps.fields import FilterConfig, FilterStep, MapConfig, MapStep
from pipelines.steps.score import ScoreConfig, ScoreStep
from pipelines.tokenizers import Tokenizers

#: The registered steps this module tests, and the prefix of the tests that do (test_spec.py's registry rule).
STEPS_TESTED = {("ingest", "chunk"): "test_chunk_", ("ingest", "extract"): "test_extract_",
                ("ingest", "score"): "test_score_", ("ingest", "filter"): "test_filter_",
                ("ingest", "map"): "test_map_"}
TEXT = ("Sie lets you define pipelines. Each step is declared in YAML! Does it evaluate code? No.\n\n"
        "A second paragraph starts here. It has two sentences.\n\n\n   Third paragraph, indented.")


@pytest.fixture(scope="module")
def ctx(engine):
    return StepContext(engine, Tokenizers(engine), "t")


def chunk(ctx, text: str, **config) -> list[Chunk]:
    step = ChunkStep(ChunkConfig(**config), ctx)
    return step.apply([Chunk("doc", 0, text, 0, len(text), {"k": 1})])


def test_chunk_by_tokens_keeps_offsets_and_overlap(ctx):
    counter = ctx.tokenizer("sentence-transformers/all-MiniLM-L6-v2")
    pieces = chunk(ctx, TEXT, by="tokens", size=8, overlap=3, tokenizer="all-MiniLM-L6-v2")
    assert [c.index for c in pieces] == list(range(len(pieces))) and len(pieces) > 3
    offsets = [o for o in counter.encode(TEXT).offsets if o[1] > o[0]]
    for i, c in enumerate(pieces):
        assert c.text == TEXT[c.start:c.end] and c.metadata == {"k": 1}
        first = 5 * i                                   # each window starts size - overlap tokens later
        assert c.start == offsets[first][0]
        assert c.end == offsets[min(first + 8, len(offsets)) - 1][1]
    assert pieces[-1].end == offsets[-1][1]             # nothing at the end is lost


def test_chunk_by_sentences_paragraphs_and_characters(ctx):
    sentences = chunk(ctx, TEXT, by="sentences", size=2, overlap=1)
    assert sentences[0].text == "Sie lets you define pipelines. Each step is declared in YAML!"
    assert sentences[1].text == "Each step is declared in YAML! Does it evaluate code?"
    paragraphs = chunk(ctx, TEXT, by="paragraphs", size=1)
    assert [p.text for p in paragraphs] == [TEXT.split("\n\n")[0], "A second paragraph starts here. It has two "
                                            "sentences.", "Third paragraph, indented."]
    assert all(p.text == TEXT[p.start:p.end] for p in sentences + paragraphs)
    chars = chunk(ctx, "abcdefghij", by="characters", size=4, overlap=1)
    assert [c.text for c in chars] == ["abcd", "defg", "ghij"]
    assert chunk(ctx, "   \n\n  ", by="paragraphs", size=1) == []
    assert [c.text for c in chunk(ctx, "a\n\nlonger one", by="paragraphs", size=1, min_chars=2)] == ["longer one"]


@given(n=st.integers(0, 60), size=st.integers(1, 12), overlap=st.integers(0, 11))
@settings(max_examples=200, deadline=None)
def test_chunk_windows_cover_every_unit_with_the_overlap_asked(n, size, overlap):
    if overlap >= size:
        return
    units = [(i * 2, i * 2 + 1) for i in range(n)]
    spans = windows(units, size, overlap)
    if not n:
        assert spans == []
        return
    assert spans[0][0] == 0 and spans[-1][1] == units[-1][1]
    starts = [units.index(next(u for u in units if u[0] == s)) for s, _ in spans]
    assert all(b - a == size - overlap for a, b in zip(starts, starts[1:]))


METADATA = [{"lang": "en", "year": 2021, "tags": "a", "nested": {"page": 1}},
            {"lang": "de", "year": 2019, "tags": "b", "nested": {"page": 2}},
            {"lang": "en", "year": 2024, "draft": True, "nested": {"page": 3}},
            {"lang": "fr", "year": 2020.5}]
FILTERS = [{"lang": "en"}, {"year": {"$gte": 2020, "$lt": 2024}}, {"lang": {"$in": ["de", "fr"]}},
           {"nested.page": {"$gt": 1}}, {"$or": [{"lang": "fr"}, {"draft": True}]},
           {"$and": [{"lang": "en"}, {"year": {"$lte": 2021}}]}, {"lang": {"$nin": ["en"]}}, {"year": 2019}]


@pytest.mark.parametrize("backend", ["lancedb", "chroma", "qdrant"])
def test_filter_conditions_agree_with_real_databases(tmp_path, backend):
    """The filter step evaluates `where` locally; for the same records, each database returns the same set."""
    configs = {"lancedb": {"type": "lancedb", "uri": str(tmp_path / "l"), "collection": "filters"},
               "chroma": {"type": "chroma", "path": str(tmp_path / "c"), "collection": "filters"},
               "qdrant": {"type": "qdrant", "collection": "filters"}}
    sink = open_sink(configs[backend])
    sink.ensure({"vectors": {"v": {"kind": "dense", "dim": 2}}})
    records = [make_record({"i": i}, f"t{i}", {"v": [1.0, float(i)]}, m) for i, m in enumerate(METADATA)]
    assert sink.upsert(records).ok
    for where in FILTERS:
        local = {records[i].id for i, m in enumerate(METADATA) if matches(parse_where(where), m)}
        remote = {h.id for h in sink.search([1.0, 0.0], where=where, limit=10)}
        assert local == remote, where
    sink.close()


def test_filter_keep_if_and_drop_if(ctx):
    chunks = [Chunk("s", i, "x", 0, 1, dict(m)) for i, m in enumerate(METADATA)]
    kept = FilterStep(FilterConfig(keep_if={"lang": "en"}), ctx).apply(chunks)
    dropped = FilterStep(FilterConfig(drop_if={"lang": "en"}), ctx).apply(chunks)
    assert [c.index for c in kept] == [0, 2] and [c.index for c in dropped] == [1, 3]


def test_map_renames_drops_and_sets_paths(ctx):
    c = Chunk("s", 0, "x", 0, 1, {"author": "Ada", "tmp": 1, "meta": {"old": 2}})
    step = MapStep(MapConfig(rename={"author": "meta.author", "missing": "nowhere"}, drop=["tmp", "meta.old"],
                             set={"dataset": "handbook", "flags.reviewed": True}), ctx)
    (out,) = step.apply([c])
    assert out.metadata == {"meta": {"author": "Ada"}, "dataset": "handbook", "flags": {"reviewed": True}}


def test_extract_step_puts_entities_and_classes_into_metadata(ctx, engine):
    texts = ["Ada Lovelace met Charles Babbage in London.", "Acme Corp hired Grace Hopper."]
    chunks = [Chunk("s", i, t, 0, len(t), {}) for i, t in enumerate(texts)]
    out = ExtractStep(ExtractConfig(model="tiny/ner", labels=["PER", "ORG"], threshold=0.0, into="people"),
                      ctx).apply(chunks)
    reference = engine.extract_sync("tiny/ner", texts, labels=["PER", "ORG"], threshold=0.0)
    found = 0
    for c, ref in zip(out, reference):
        want: dict[str, list[str]] = {}
        for e in ref.entities:
            if e.text not in want.setdefault(e.label, []):
                want[e.label].append(e.text)
        assert c.metadata.get("people", {}) == want
        assert all(t in c.text for texts_ in want.values() for t in texts_)
        found += sum(map(len, want.values()))
    assert found > 0   # the tiny tagger (threshold 0) does tag something: the test is not vacuous


def test_extract_step_puts_the_best_class_or_every_class_into_metadata(ctx, engine):
    texts = ["my card was charged twice", "the site is down again", "thanks for the quick help"]
    labels = ["billing", "outage", "praise"]
    chunks = [Chunk("s", i, t, 0, len(t), {}) for i, t in enumerate(texts)]
    best = ExtractStep(ExtractConfig(model="tiny/nli", labels=labels, classes_into="ticket.topic"), ctx).apply(
        [Chunk(c.source_id, c.index, c.text, 0, 0, {}) for c in chunks])
    every = ExtractStep(ExtractConfig(model="tiny/nli", labels=labels, threshold=0.0, multi_label=True,
                                      classes_into="topics"), ctx).apply(chunks)
    single = engine.extract_sync("tiny/nli", texts, labels=labels)
    multi = engine.extract_sync("tiny/nli", texts, labels=labels, threshold=0.0, multi_label=True)
    for c, ref in zip(best, single):
        assert c.metadata["ticket"]["topic"] == max(ref.classifications, key=lambda x: x.score).label
    for c, ref in zip(every, multi):
        assert c.metadata["topics"] == [x.label for x in sorted(ref.classifications, key=lambda x: -x.score)]
        assert sorted(c.metadata["topics"]) == sorted(labels)


def test_score_step_scores_keeps_and_takes_the_top_k_per_source(ctx, engine):
    texts = ["refund my invoice", "the weather is nice", "billing problem with my card", "cats sleep a lot"]
    chunks = [Chunk(f"s{i % 2}", i, t, 0, len(t), {}) for i, t in enumerate(texts)]
    scored = {s.index: s.score for s in engine.score_sync("tiny/rerank", "billing", texts)}
    threshold = sorted(scored.values())[1]
    out = ScoreStep(ScoreConfig(model="tiny/rerank", query="billing", field="rel", keep_if={"gte": threshold}),
                    ctx).apply([Chunk(c.source_id, c.index, c.text, 0, 0, {}) for c in chunks])
    assert {c.index for c in out} == {i for i, s in scored.items() if s >= threshold} and len(out) == 3
    assert all(c.metadata["rel"] == pytest.approx(scored[c.index]) for c in out)
    best = ScoreStep(ScoreConfig(model="tiny/rerank", query="billing", top_k=1), ctx).apply(chunks)
    for source in ("s0", "s1"):
        mine = [i for i in scored if f"s{i % 2}" == source]
        assert [c.index for c in best if c.source_id == source] == [max(mine, key=lambda i: scored[i])]
