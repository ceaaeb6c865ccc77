"""/v1/score, /v1/rerank and /v1/extract on a live server answer what the in-process Engine answers,
for a cross-encoder, a token-classification tagger and an NLI zero-shot model (tiny random weights)."""

from __future__ import annotations

import textwrap

import pytest

from sie import Engine
from sie.config import Settings

BIO = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
NLI = {0: "entailment", 1: "neutral", 2: "contradiction"}
DOCS = ["Penguins live in Antarctica.", "Stocks fell on Monday.", "Emperor penguins huddle in winter.", "penguins"]
TEXTS = ["Angela Merkel met Emmanuel Macron in Strasbourg.", "Zoë flew to São Paulo!"]


def card(name: str, folder, capabilities: str) -> str:
    return textwrap.dedent(f"""
        name: {name}
        source: {{path: "{folder}"}}
        architecture: bert
        max_tokens: 64
        precision: {{cpu: fp32}}
        capabilities:
          {capabilities}
    """)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, tiny_models):
    d = tmp_path_factory.mktemp("score-extract-catalog")
    (d / "ce.yaml").write_text(card("tiny/ce", tiny_models("bert", head="sequence-classification", num_labels=1),
                                    "score: {kind: cross-encoder}"))
    tagger = tiny_models("bert", seed=3, head="token-classification", num_labels=5, id2label=BIO,
                         label2id={v: k for k, v in BIO.items()})
    (d / "ner.yaml").write_text(card("tiny/ner", tagger, "extract: {kind: token-classification, threshold: 0.0}"))
    nli = tiny_models("bert", head="sequence-classification", num_labels=3, id2label=NLI,
                      label2id={v: k for k, v in NLI.items()})
    (d / "nli.yaml").write_text(card("tiny/nli", nli, "extract: {kind: nli, threshold: 0.0}"))
    return d


@pytest.fixture(scope="module")
def http(server_factory, catalog):
    server = server_factory({"SIE_CATALOG_DIRS": str(catalog)})
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def engine(catalog):
    e = Engine(Settings(device="cpu", catalog_dirs=[str(catalog)], cpu_precision="fp32"))
    yield e
    e.close()


def test_score_route_returns_sorted_items_with_rank_index_and_ids(http, engine):
    items = [{"id": f"d{i}", "text": t} for i, t in enumerate(DOCS)]
    r = http.post("/v1/score/tiny/ce", json={"query": {"id": "q", "text": "where do penguins live"}, "items": items,
                                            "params": {"top_k": 3}})
    assert r.status_code == 200, r.text
    body = r.json()
    want = engine.score_sync("tiny/ce", "where do penguins live", DOCS, top_k=3)
    assert [(x["index"], x["rank"], x["id"]) for x in body["items"]] == [(w.index, w.rank, f"d{w.index}") for w in want]
    assert [x["score"] for x in body["items"]] == pytest.approx([w.score for w in want], abs=1e-5)
    assert body["query_id"] == "q"


def test_rerank_route_matches_the_engine(http, engine):
    r = http.post("/v1/rerank", json={"model": "tiny/ce", "query": "where do penguins live", "documents": DOCS,
                                      "top_n": 2, "return_documents": True})
    assert r.status_code == 200, r.text
    want = engine.score_sync("tiny/ce", "where do penguins live", DOCS, top_k=2)
    got = r.json()["results"]
    assert [x["index"] for x in got] == [w.index for w in want]
    assert [x["document"]["text"] for x in got] == [DOCS[w.index] for w in want]


def test_extract_route_returns_entities_with_exact_offsets(http, engine):
    r = http.post("/v1/extract/tiny/ner", json={"items": [{"text": t} for t in TEXTS]})
    assert r.status_code == 200, r.text
    want = engine.extract_sync("tiny/ner", TEXTS)
    for text, got, ref in zip(TEXTS, r.json()["items"], want):
        assert [(e["label"], e["start"], e["end"], e["text"]) for e in got["entities"]] == [
            (e.label, e.start, e.end, e.text) for e in ref.entities]
        assert all(text[e["start"]:e["end"]] == e["text"] for e in got["entities"])
    assert sum(len(i["entities"]) for i in r.json()["items"]) > 0


def test_extract_route_classifies_through_nli(http, engine):
    labels = ["travel", "politics", "food"]
    r = http.post("/v1/extract/tiny/nli", json={"items": [{"text": TEXTS[0]}],
                                                "params": {"labels": labels, "multi_label": True}})
    assert r.status_code == 200, r.text
    got = r.json()["items"][0]["classifications"]
    want = engine.extract_sync("tiny/nli", TEXTS[:1], labels=labels, multi_label=True)[0].classifications
    assert [c["label"] for c in got] == [c.label for c in want]
    assert [c["score"] for c in got] == pytest.approx([c.score for c in want], abs=1e-5)
    missing = http.post("/v1/extract/tiny/nli", json={"items": [{"text": "x"}]})
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "labels"
