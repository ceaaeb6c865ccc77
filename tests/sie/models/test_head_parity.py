"""Heads vs their references on ragged batches (fp32, ≤ 1e-4 max-abs):
SPLADE vs transformers' masked-LM logits, sequence/token classification vs the *ForSequence/Token-
Classification models, yes/no vs the causal LM's next-token logits, ColBERT and bge-m3 heads vs the
projection recomputed from the transformers token states (FlagEmbedding / ColBERT semantics)."""

from __future__ import annotations

import pytest
import torch
import transformers
from parity import CPU, TOLERANCE, max_abs, padded, per_sequence, ragged

from sie.models import runner_class
from sie.models.auto import AutoModelRunner
from sie.models.classifier import SequenceClassifierHead
from sie.models.colbert import ColbertHead
from sie.models.runner import PackedBatch
from sie.models.splade import SpladeHead
from sie.models.token_classifier import TokenClassifierHead
from sie.models.token_weights import TokenWeightsHead
from sie.models.yes_no import YesNoHead

# Read from this syntax tree by tests/sie/models/declared.py: the registry entries this module proves against
# their reference (test_registry.py).
PARITY_TESTED = {
    ("head", "splade"): "test_splade_matches_masked_lm_reference",
    ("head", "token-weights"): "test_bge_m3_sparse_and_multivector_heads_match_flagembedding_semantics",
    ("head", "colbert"): "test_colbert_head_with_mask_augmentation_matches_reference",
    ("head", "sequence-classification"): "test_sequence_classification_matches_reference",
    ("head", "yes-no"): "test_yes_no_matches_causal_lm_next_token_logits",
    ("head", "token-classification"): "test_token_classification_matches_reference",
}

OWN = {"bert": "bert", "xlm-roberta": "xlm-roberta", "modernbert": "modernbert", "qwen3": "qwen3", "qwen2": "qwen2"}


def load_runner(kind: str, folder):
    """Our runner for `kind`, or the transformers fallback for families without one (DeBERTa, DistilBERT)."""
    if kind in OWN:
        return runner_class(OWN[kind]).load(folder, device=CPU, dtype=torch.float32)
    return AutoModelRunner.load(folder, device=CPU, dtype=torch.float32)


def reference_model(head_class: str, folder):
    return getattr(transformers, head_class).from_pretrained(folder, attn_implementation="eager").eval()


def batch_for(runner, n: int, seed: int, max_len: int = 60):
    seqs = ragged(n, max_len, seed)
    return seqs, PackedBatch.from_sequences(seqs)


@pytest.mark.parametrize("kind, chunk", [("bert", 1024), ("bert", 16), ("xlm-roberta", 1024),
                                         ("distilbert", 1024), ("modernbert", 1024)])
def test_splade_matches_masked_lm_reference(tiny_models, monkeypatch, kind, chunk):
    """chunk 16: long sequences go through the vocabulary projection in pieces, short ones in groups."""
    import sie.models.splade

    monkeypatch.setattr(sie.models.splade, "TOKENS_PER_CHUNK", chunk)
    folder = tiny_models(kind, head="masked-lm")
    runner = load_runner(kind, folder)
    config = transformers.AutoConfig.from_pretrained(folder)
    head = SpladeHead.load(folder, config, device=CPU, dtype=torch.float32)
    seqs, batch = batch_for(runner, 9, seed=1)
    rows = head(runner.forward(batch), batch)
    model = reference_model("AutoModelForMaskedLM", folder)
    inputs = padded(seqs, config.pad_token_id)
    with torch.no_grad():
        logits = model(**inputs).logits
    weights = torch.log1p(torch.relu(logits)) * inputs["attention_mask"][..., None]
    want = weights.max(dim=1).values                                           # [B, V]
    for i, (idx, val) in enumerate(rows):
        got = torch.zeros(want.shape[1])
        got[torch.from_numpy(idx).long()] = torch.from_numpy(val)
        assert max_abs(got, want[i]) <= TOLERANCE, f"{kind}: sequence {i}"
        assert (idx[1:] > idx[:-1]).all() and (val > 0).all()
    skip = torch.tensor([seqs[0][0], seqs[0][-1]])
    skipped = head(runner.forward(batch), batch, skip_ids=skip)[0][0]
    assert not set(skip.tolist()) & set(skipped.tolist())


@pytest.mark.parametrize("kind", ["bert", "xlm-roberta", "deberta-v2", "distilbert", "modernbert", "qwen3"])
def test_sequence_classification_matches_reference(tiny_models, kind):
    folder = tiny_models(kind, head="sequence-classification", num_labels=3)
    runner = load_runner(kind, folder)
    config = transformers.AutoConfig.from_pretrained(folder)
    head = SequenceClassifierHead.load(folder, config, device=CPU, dtype=torch.float32)
    seqs, batch = batch_for(runner, 11, seed=2)
    got = head(runner.forward(batch), batch)
    model = reference_model("AutoModelForSequenceClassification", folder)
    with torch.no_grad():
        want = model(**padded(seqs, config.pad_token_id)).logits
    assert got.shape == (11, 3)
    assert max_abs(got, want) <= TOLERANCE


def test_modernbert_mean_pooled_classifier_matches_reference(tiny_models):
    folder = tiny_models("modernbert", head="sequence-classification", num_labels=2, classifier_pooling="mean")
    runner = load_runner("modernbert", folder)
    config = transformers.AutoConfig.from_pretrained(folder)
    head = SequenceClassifierHead.load(folder, config, device=CPU, dtype=torch.float32)
    seqs, batch = batch_for(runner, 7, seed=3)
    model = reference_model("AutoModelForSequenceClassification", folder)
    with torch.no_grad():
        want = model(**padded(seqs, config.pad_token_id)).logits
    assert max_abs(head(runner.forward(batch), batch), want) <= TOLERANCE


@pytest.mark.parametrize("kind", ["bert", "xlm-roberta", "deberta-v2", "modernbert"])
def test_token_classification_matches_reference(tiny_models, kind):
    folder = tiny_models(kind, head="token-classification", num_labels=5)
    runner = load_runner(kind, folder)
    config = transformers.AutoConfig.from_pretrained(folder)
    head = TokenClassifierHead.load(folder, config, device=CPU, dtype=torch.float32)
    seqs, batch = batch_for(runner, 9, seed=4)
    got = per_sequence(head(runner.forward(batch)), batch)
    model = reference_model("AutoModelForTokenClassification", folder)
    with torch.no_grad():
        want = model(**padded(seqs, config.pad_token_id)).logits
    for i, s in enumerate(seqs):
        assert max_abs(got[i], want[i, : len(s)]) <= TOLERANCE


@pytest.mark.parametrize("tied", [True, False])
def test_yes_no_matches_causal_lm_next_token_logits(tiny_models, tied, attention_path):
    folder = tiny_models("qwen3", head="causal-lm", tie_word_embeddings=tied)
    runner = load_runner("qwen3", folder)
    config = transformers.AutoConfig.from_pretrained(folder)
    yes, no = 2748, 2053  # "yes" / "no" in the MiniLM vocabulary
    head = YesNoHead.load(folder, config, yes_id=yes, no_id=no, device=CPU, dtype=torch.float32)
    seqs, batch = batch_for(runner, 9, seed=5)
    got = head(runner.forward(batch), batch)
    model = reference_model("AutoModelForCausalLM", folder)
    with torch.no_grad():
        logits = model(**padded(seqs, config.pad_token_id)).logits
    last = torch.stack([logits[i, len(s) - 1, [no, yes]] for i, s in enumerate(seqs)])
    assert max_abs(got, last) <= TOLERANCE


def _hidden_reference(folder, seqs, key_lengths=None):
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        h = model(**padded(seqs, model.config.pad_token_id, key_lengths)).last_hidden_state
    return [h[i, : len(s)] for i, s in enumerate(seqs)]


@pytest.mark.parametrize("fallback, attention_path", [(False, "sdpa"), (False, "flash"), (True, "sdpa")],
                         indirect=["attention_path"])  # the fallback runner is transformers' own attention
def test_colbert_head_with_mask_augmentation_matches_reference(tiny_models, tmp_path, fallback, attention_path):
    """Queries padded with [MASK] that nothing attends to (attend_to_mask_tokens=False): the reference
    masks those keys; projection, normalization and the punctuation skiplist on top."""
    from safetensors.torch import save_file

    folder = tiny_models("bert")
    torch.manual_seed(7)
    weight = torch.randn(16, 64) * 0.2
    save_file({"linear.weight": weight}, str(tmp_path / "colbert.safetensors"))
    head = ColbertHead.load(tmp_path, "colbert.safetensors:linear.weight", normalize=True, skip_first_token=False,
                            device=CPU, dtype=torch.float32)
    runner = AutoModelRunner.load(folder, device=CPU, dtype=torch.float32) if fallback else load_runner("bert", folder)
    seqs = ragged(8, 20, seed=6)
    seqs = [s + [103] * (32 - len(s)) for s in seqs]                   # [MASK]-augmented to 32
    keys = [len(s) - s.count(103) for s in seqs]
    order = sorted(range(8), key=lambda i: -len(seqs[i]))
    batch = PackedBatch.from_sequences([seqs[i] for i in order], key_lengths=[keys[i] for i in order])
    punct = torch.tensor(sorted({seqs[0][1], seqs[3][2]}))
    got = head(runner.forward(batch), batch, skip_ids=punct)
    ref = _hidden_reference(folder, [seqs[i] for i in order], [keys[i] for i in order])
    for row, i in enumerate(order):
        vectors = torch.nn.functional.normalize(ref[row] @ weight.T, dim=-1)
        keep = ~torch.isin(torch.tensor(seqs[i]), punct)
        assert max_abs(torch.from_numpy(got[row]), vectors[keep]) <= TOLERANCE


def test_bge_m3_sparse_and_multivector_heads_match_flagembedding_semantics(tiny_models, tmp_path):
    """bge-m3: sparse = ReLU(Linear(h → 1)) per token, max per id, special ids skipped; multivector =
    Linear(h → h) with bias on every token but [CLS], normalized. Pickled .pt heads, as bge-m3 ships them."""
    folder = tiny_models("xlm-roberta")
    torch.manual_seed(8)
    sparse = {"weight": torch.randn(1, 64) * 0.3, "bias": torch.tensor([0.05])}
    colbert = {"weight": torch.randn(64, 64) * 0.2, "bias": torch.randn(64) * 0.1}
    torch.save(sparse, tmp_path / "sparse_linear.pt")
    torch.save(colbert, tmp_path / "colbert_linear.pt")
    runner = load_runner("xlm-roberta", folder)
    weights = TokenWeightsHead.load(tmp_path / "sparse_linear.pt", device=CPU, dtype=torch.float32)
    multi = ColbertHead.load(tmp_path, "colbert_linear.pt:weight", normalize=True, skip_first_token=True,
                             device=CPU, dtype=torch.float32)
    seqs = ragged(9, 40, seed=9, high=1200)          # a small id range: repeated ids exercise the per-id max
    batch = PackedBatch.from_sequences(seqs)
    hidden = runner.forward(batch)
    special = torch.tensor([seqs[0][0], 1000])
    got_sparse = weights(hidden, batch, special)
    got_multi = multi(hidden, batch)
    for i, h in enumerate(_hidden_reference(folder, seqs)):
        w = torch.relu(h @ sparse["weight"].T + sparse["bias"]).squeeze(-1)
        want: dict[int, float] = {}
        for tid, value in zip(seqs[i], w.tolist()):
            if tid in special.tolist() or value <= 0:
                continue
            want[tid] = max(want.get(tid, 0.0), value)
        idx, val = got_sparse[i]
        assert sorted(want) == idx.tolist()
        assert max(abs(a - want[t]) for t, a in zip(idx.tolist(), val.tolist())) <= TOLERANCE if want else True
        vec = torch.nn.functional.normalize(h[1:] @ colbert["weight"].T + colbert["bias"], dim=-1)
        assert got_multi[i].shape == (len(seqs[i]) - 1, 64)
        if len(seqs[i]) > 1:
            assert max_abs(torch.from_numpy(got_multi[i]), vec) <= TOLERANCE
