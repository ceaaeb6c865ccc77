"""Own BERT / XLM-R runner vs the transformers reference on ragged batches, every pooling mode."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModel

from sie.models.bert import BertRunner
from sie.models.pooling import finish, pool
from sie.models.runner import PackedBatch

# Read from this syntax tree by tests/sie/models/declared.py: the registry entries this module proves against
# their reference (test_registry.py), and the tiny model the runner contract test loads for each family here.
PARITY_TESTED = {("runner", "bert"): "test_token_states_match_reference",
                 ("runner", "roberta"): "test_token_states_match_reference",
                 ("runner", "xlm-roberta"): "test_token_states_match_reference"}
CONTRACT_MODELS = {
    "bert": ("bert", {"head": "masked-lm"}, "encode: {dense: {dims: 64}, sparse: {kind: splade}}"),
    "roberta": ("roberta", {"head": "sequence-classification", "num_labels": 3}, "score: {kind: cross-encoder}"),
    "xlm-roberta": ("xlm-roberta", {"head": "token-classification", "num_labels": 3},
                    "extract: {kind: token-classification}"),
}

CPU = torch.device("cpu")


def _reference(folder, seqs: list[list[int]], type_ids: list[list[int]] | None = None) -> list[torch.Tensor]:
    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    L = max(len(s) for s in seqs)
    pad = model.config.pad_token_id
    ids = torch.full((len(seqs), L), pad, dtype=torch.long)
    mask = torch.zeros(len(seqs), L, dtype=torch.long)
    tt = torch.zeros(len(seqs), L, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        if type_ids:
            tt[i, : len(s)] = torch.tensor(type_ids[i])
    kwargs = {"input_ids": ids, "attention_mask": mask}
    if type_ids:
        kwargs["token_type_ids"] = tt
    if model.config.model_type != "bert":
        # RoBERTa computes positions from non-pad tokens; never let a real token equal the pad id.
        assert all(pad not in s for s in seqs)
    with torch.no_grad():
        hidden = model(**kwargs).last_hidden_state
    return [hidden[i, : len(s)] for i, s in enumerate(seqs)]


def _ragged(n: int, max_len: int, seed: int) -> list[list[int]]:
    """n sequences, lengths 1..max_len (both ends included when n >= 2), ids clear of special/pad ids."""
    rng = random.Random(seed)
    lengths = [1, max_len] + [rng.randint(1, max_len) for _ in range(n - 2)] if n >= 2 else [rng.randint(1, max_len)]
    seqs = [[rng.randint(100, 29999) for _ in range(k)] for k in lengths]
    return sorted(seqs, key=len, reverse=True)


@pytest.mark.parametrize("kind", ["bert", "roberta", "xlm-roberta"])
@pytest.mark.parametrize("batch_size", [1, 2, 7, 33])
def test_token_states_match_reference(tiny_models, kind, batch_size, attention_path):
    folder = tiny_models(kind)
    runner = BertRunner.load(folder, device=CPU, dtype=torch.float32)
    seqs = _ragged(batch_size, runner.max_positions, seed=batch_size)
    ref = _reference(folder, seqs)
    batch = PackedBatch.from_sequences(seqs)
    ours = runner.forward(batch)
    assert ours.shape == (sum(map(len, seqs)), runner.hidden_size)
    for i, r in enumerate(ref):
        got = ours[batch.cu_seqlens[i]: batch.cu_seqlens[i + 1]]
        assert (got - r).abs().max().item() <= 1e-4, f"sequence {i} (length {len(seqs[i])})"


@pytest.mark.parametrize("kind", ["bert", "roberta", "xlm-roberta"])
@pytest.mark.parametrize("mode", ["cls", "mean", "last"])
def test_pooled_vectors_match_reference(tiny_models, kind, mode, attention_path):
    folder = tiny_models(kind)
    runner = BertRunner.load(folder, device=CPU, dtype=torch.float32)
    seqs = _ragged(33, runner.max_positions, seed=99)
    ref = _reference(folder, seqs)
    expect = {"cls": lambda h: h[0], "mean": lambda h: h.mean(0), "last": lambda h: h[-1]}[mode]
    ref_vec = torch.nn.functional.normalize(torch.stack([expect(h) for h in ref]), dim=-1)
    batch = PackedBatch.from_sequences(seqs)
    ours = finish(pool(runner.forward(batch), batch, mode), dims=None, normalize=True)
    assert (ours - ref_vec).abs().max().item() <= 1e-4


def test_token_type_ids_match_reference(tiny_models, attention_path):
    folder = tiny_models("bert")
    runner = BertRunner.load(folder, device=CPU, dtype=torch.float32)
    seqs = _ragged(9, runner.max_positions, seed=5)
    types = [[0] * (len(s) // 2) + [1] * (len(s) - len(s) // 2) for s in seqs]
    ref = _reference(folder, seqs, types)
    batch = PackedBatch.from_sequences(seqs, type_ids=types)
    ours = runner.forward(batch)
    for i, r in enumerate(ref):
        assert (ours[batch.cu_seqlens[i]: batch.cu_seqlens[i + 1]] - r).abs().max().item() <= 1e-4


def test_packed_batch_rejects_unsorted_and_empty():
    with pytest.raises(ValueError, match="longest first"):
        PackedBatch.from_sequences([[1], [1, 2]])
    with pytest.raises(ValueError, match="non-empty"):
        PackedBatch.from_sequences([[1], []])
