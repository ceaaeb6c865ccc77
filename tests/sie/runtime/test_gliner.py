"""GLiNER on our runner vs the `gliner` package (tests/sie/fixtures/gliner_reference.json, written by
make_gliner_reference.py in a separate venv): span probabilities ≤ 1e-4 and identical entities for
every threshold / flat / multi-label combination, on both span modes (marker, markerV0)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_cards import card_yaml

# Read from this syntax tree by tests/sie/models/declared.py: the registry entries this module proves against
# their reference (test_registry.py), and the tiny model the runner contract test loads for each family here.
PARITY_TESTED = {("runner", "gliner"): "test_span_probabilities_match_the_gliner_package",
                 ("head", "gliner"): "test_span_probabilities_match_the_gliner_package"}
CONTRACT_MODELS = {"gliner": ("gliner", {}, "extract: {kind: gliner, threshold: 0.5}")}

FIXTURE = Path(__file__).parent.parent / "fixtures"
REFERENCE = json.loads((FIXTURE / "gliner_reference.json").read_text())
MODES = list(REFERENCE["checkpoints"])


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, minilm_path):
    import sys

    sys.path.insert(0, str(FIXTURE))
    import make_gliner_reference as maker
    import tiny_models

    root = tmp_path_factory.mktemp("gliner")
    folders = {}
    for name, spec in maker.CHECKPOINTS.items():
        folders[name] = tiny_models.build_gliner(root / name, minilm_path, **spec)
        assert maker.digest(folders[name]) == REFERENCE["checkpoints"][name]["digest"], (
            "tiny_models.build_gliner no longer builds the weights the reference was computed on; "
            "regenerate tests/sie/fixtures/gliner_reference.json (see make_gliner_reference.py)")
    return folders


@pytest.fixture()
def engine(make_engine, checkpoints):
    cards = {m: card_yaml(f"t/gliner-{m}", checkpoints[m], "gliner", "extract: {kind: gliner, threshold: 0.5}",
                          max_tokens=256) for m in MODES}
    return make_engine(**cards)


@pytest.mark.parametrize("mode", MODES)
def test_span_probabilities_match_the_gliner_package(engine, mode):
    """The span probabilities as `extract` computes them: the request's plan through the engine's batcher,
    before decoding (which the test below compares)."""
    import asyncio

    from sie.runtime.kinds import kind

    loaded = engine.model(f"t/gliner-{mode}")
    for run in REFERENCE["checkpoints"][mode]["runs"]:
        plan = kind("gliner").prepare(loaded, REFERENCE["texts"], run["labels"])
        job = asyncio.run(engine.batcher.run(loaded, plan.work, plan.key, plan.seqs, plan.metas))
        results = job.results
        assert len(results) == len(REFERENCE["texts"])
        for i, want in enumerate(run["probs"]):
            got = results[i]["spans"]
            want = np.asarray(want)
            assert got.shape == want.shape, f"text {i}: words × width × labels"
            words, width = want.shape[:2]
            fits = np.arange(words)[:, None] + np.arange(width)[None, :] < words
            # Spans past the last word: the reference scores them as span (0, 0); ours are 0. Neither is decoded.
            assert np.abs(got - want)[fits].max() <= 1e-4, f"text {i}, labels {run['labels']}"
            assert (got[~fits] == 0).all()


@pytest.mark.parametrize("mode", MODES)
def test_entities_match_the_gliner_package(engine, mode):
    texts = REFERENCE["texts"]
    compared = 0
    for run in REFERENCE["checkpoints"][mode]["runs"]:
        for case in run["decoded"]:
            items = engine.extract_sync(f"t/gliner-{mode}", texts, labels=run["labels"], threshold=case["threshold"],
                                        flat=case["flat_ner"], multi_label=case["multi_label"])
            for i, (item, want) in enumerate(zip(items, case["entities"])):
                got = [(e.start, e.end, e.label, e.text, e.score) for e in item.entities]
                ref = [(w["start"], w["end"], w["label"], w["text"], w["score"]) for w in want]
                # Labels of one span come best score first; the random-weight tagger scores some labels of a
                # span ~6e-8 apart, where the order is float noise between CPUs (an AMX Xeon swaps them). So:
                # the spans in the package's order, each span's labels and scores, and our order by score.
                assert [g[:2] for g in got] == [r[:2] for r in ref], (i, case)
                assert [g[:4] for g in sorted(got)] == [r[:4] for r in sorted(ref)], (i, case)
                assert np.allclose([g[4] for g in sorted(got)], [r[4] for r in sorted(ref)], atol=1e-4)
                assert all(a[4] >= b[4] for a, b in zip(got, got[1:]) if a[:2] == b[:2]), (i, case)
                for e in item.entities:
                    assert texts[i][e.start:e.end] == e.text
                compared += len(want)
    assert compared > 100  # the reference is not a set of empty lists


def test_long_text_is_cut_to_max_len_words_and_flagged(engine):
    item = engine.extract_sync("t/gliner-markerV0", [REFERENCE["texts"][3], "short text"], labels=["city"])
    assert item[0].truncated and not item[1].truncated
    assert all(e.end <= REFERENCE["texts"][3].index("word40") for e in item[0].entities)
