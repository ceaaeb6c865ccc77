"""Engine.extract for token-classification NER and NLI zero-shot classification, against transformers'
own pipelines on the same tiny checkpoints; entity offsets map back to the exact input substring."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_cards import card_yaml
from transformers import pipeline

from sie.errors import InvalidInput, UnsupportedCapability

BIO = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC", 5: "B-ORG", 6: "I-ORG"}
TEXTS = ["Hugging Face Inc. is a company based in New York City.",
         "Angela Merkel met Emmanuel Macron in Strasbourg yesterday!",
         "Zoë visited São Paulo — and Zürich's unbelievably picturesque waterfront.",
         "x"]


@pytest.fixture(scope="module")
def tagger_folder(tmp_path_factory, minilm_path):
    import tiny_models as tm

    folder = tmp_path_factory.mktemp("tagger")
    return tm.build("bert", folder, minilm_path, seed=3, head="token-classification", num_labels=len(BIO),
                    id2label=BIO, label2id={v: k for k, v in BIO.items()})


@pytest.mark.parametrize("aggregation", ["simple", "first", "average", "max"])
def test_token_classification_matches_the_transformers_pipeline(make_engine, tagger_folder, aggregation):
    card = card_yaml("t/ner", tagger_folder, "bert",
                     f"extract: {{kind: token-classification, threshold: 0.0, aggregation: {aggregation}}}")
    engine = make_engine(n=card)
    reference = pipeline("token-classification", model=str(tagger_folder), aggregation_strategy=aggregation,
                         device="cpu")
    results = engine.extract_sync("t/ner", TEXTS)
    found = 0
    for text, item in zip(TEXTS, results):
        want = reference(text)
        got = item.entities
        assert [(e.label, e.start, e.end) for e in got] == [(w["entity_group"], w["start"], w["end"]) for w in want]
        assert np.allclose([e.score for e in got], [w["score"] for w in want], atol=1e-4)
        assert all(text[e.start:e.end] == e.text for e in got)
        assert item.classifications == []
        found += len(got)
    assert found >= 8


def test_token_classification_threshold_and_label_filter(make_engine, tagger_folder):
    engine = make_engine(n=card_yaml("t/ner", tagger_folder, "bert", "extract: {kind: token-classification}"))
    everything = engine.extract_sync("t/ner", TEXTS, threshold=0.0)
    confident = engine.extract_sync("t/ner", TEXTS)  # the card's default threshold: 0.5
    assert sum(map(len, (i.entities for i in confident))) < sum(map(len, (i.entities for i in everything)))
    assert all(e.score >= 0.5 for i in confident for e in i.entities)
    found = [e.label for i in everything for e in i.entities]
    common = max(set(found), key=found.count)
    only = engine.extract_sync("t/ner", TEXTS, threshold=0.0, labels=[common])
    assert {e.label for i in only for e in i.entities} == {common}
    assert sum(len(i.entities) for i in only) == found.count(common)


@pytest.mark.parametrize("id2label", [{0: "entailment", 1: "neutral", 2: "contradiction"},
                                      {0: "contradiction", 1: "neutral", 2: "entailment"},
                                      {0: "entailment", 1: "not_entailment"}])
@pytest.mark.parametrize("multi_label", [False, True])
def test_nli_zero_shot_matches_the_transformers_pipeline(make_engine, tiny_models, id2label, multi_label):
    folder = tiny_models("bert", head="sequence-classification", num_labels=len(id2label), id2label=id2label,
                         label2id={v: k for k, v in id2label.items()})
    spec = 'extract: {kind: nli, threshold: 0.0, hypothesis_template: "This text is about {}."}'
    engine = make_engine(z=card_yaml("t/nli", folder, "bert", spec))
    reference = pipeline("zero-shot-classification", model=str(folder), device="cpu")
    labels = ["travel", "politics", "cooking", "sports"]
    results = engine.extract_sync("t/nli", TEXTS, labels=labels, multi_label=multi_label)
    for text, item in zip(TEXTS, results):
        want = reference(text, candidate_labels=labels, hypothesis_template="This text is about {}.",
                         multi_label=multi_label)
        assert [c.label for c in item.classifications] == want["labels"]
        assert np.allclose([c.score for c in item.classifications], want["scores"], atol=1e-4)
        if not multi_label:
            assert abs(sum(c.score for c in item.classifications) - 1) < 1e-5
        assert item.entities == [] and item.tokens > 0
    one = engine.extract_sync("t/nli", TEXTS[:1], labels=["travel"])[0].classifications
    want = reference(TEXTS[0], candidate_labels=["travel"], hypothesis_template="This text is about {}.")
    assert np.isclose(one[0].score, want["scores"][0], atol=1e-4)


def test_extract_errors_name_the_field(make_engine, tiny_models, tagger_folder):
    labels = {0: "entailment", 1: "not_entailment"}
    folder = tiny_models("bert", head="sequence-classification", num_labels=2, id2label=labels,
                         label2id={v: k for k, v in labels.items()})
    engine = make_engine(z=card_yaml("t/nli", folder, "bert", "extract: {kind: nli}"),
                         e=card_yaml("t/emb", tiny_models("bert"), "bert", "encode: {dense: {dims: 64}}"))
    with pytest.raises(UnsupportedCapability, match="model: 't/emb' has no extract capability"):
        engine.extract_sync("t/emb", ["x"])
    with pytest.raises(InvalidInput, match="labels: a nli model extracts the labels you name"):
        engine.extract_sync("t/nli", ["x"])
    with pytest.raises(InvalidInput, match=r"labels\[1\]: expected a non-empty string"):
        engine.extract_sync("t/nli", ["x"], labels=["a", ""])
    with pytest.raises(InvalidInput, match=r"threshold: expected a number in \[0, 1\], got 1.5"):
        engine.extract_sync("t/nli", ["x"], labels=["a"], threshold=1.5)


def test_nli_card_on_a_model_without_entailment_fails_to_load(make_engine, tiny_models):
    from sie.errors import ModelLoadFailed

    folder = tiny_models("bert", head="sequence-classification", num_labels=2)   # LABEL_0 / LABEL_1
    engine = make_engine(z=card_yaml("t/nli", folder, "bert", "extract: {kind: nli}"))
    with pytest.raises(ModelLoadFailed, match="needs an 'entailment' label"):
        engine.extract_sync("t/nli", ["x"], labels=["a"])


def test_similarity_zero_shot_classes_on_the_bundled_model():
    """kind 'similarity': softmax(cosine / T) of the text against each label's hypothesis, and plain cosine
    for multi-label; the bundled MiniLM gets the obvious topics right."""
    import numpy as np

    from sie import Engine
    from sie.config import Settings

    texts = ["The striker scored twice in the final minutes.", "Quarterly revenue grew 12 percent."]
    labels = ["sports", "finance", "cooking"]
    e = Engine(Settings(device="cpu", cpu_precision="fp32"))
    try:
        got = e.extract_sync("all-MiniLM-L6-v2", texts, labels=labels)
        multi = e.extract_sync("all-MiniLM-L6-v2", texts, labels=labels, multi_label=True, threshold=0.2)
        t = np.stack([i.dense for i in e.encode_sync("all-MiniLM-L6-v2", texts)])
        h = np.stack([i.dense for i in e.encode_sync("all-MiniLM-L6-v2", [f"This text is about {x}." for x in labels])])
    finally:
        e.close()
    cos = t @ h.T
    probs = np.exp(cos / 0.05) / np.exp(cos / 0.05).sum(1, keepdims=True)
    assert [r.classifications[0].label for r in got] == ["sports", "finance"]
    for r, row in zip(got, probs):
        assert {c.label: c.score for c in r.classifications} == pytest.approx(dict(zip(labels, row)), abs=1e-5)
    for r, row in zip(multi, cos):
        assert {c.label: c.score for c in r.classifications} == pytest.approx(
            {lab: v for lab, v in zip(labels, row) if v >= 0.2}, abs=1e-5)
