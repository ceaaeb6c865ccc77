"""Own ModernBERT and Qwen2/Qwen3 runners vs the transformers reference on ragged batches (fp32).

The tiny models cover what makes these families different: ModernBERT's local layers (a ±8-token
window, far shorter than the sequences), both RoPE bases and GeGLU; Qwen3's q/k norms with GQA 4:2;
Qwen2's q/k/v biases with GQA 4:1 and a sliding-window layer (window 8) under the causal mask.
"""

from __future__ import annotations

import pytest
import torch
from parity import CPU, TOLERANCE, max_abs, padded, per_sequence, ragged
from transformers import AutoModel

from sie.models import runner_class
from sie.models.pooling import pool
from sie.models.runner import PackedBatch

# Read from this syntax tree by tests/sie/models/declared.py: the registry entries this module proves against
# their reference (test_registry.py), and the tiny model the runner contract test loads for each family here.
PARITY_TESTED = {("runner", "modernbert"): "test_token_states_match_reference",
                 ("runner", "qwen2"): "test_token_states_match_reference",
                 ("runner", "qwen3"): "test_token_states_match_reference"}
YES_NO = 'score: {kind: yes-no, yes_token: "yes", no_token: "no", template: {body: "{query} {document}"}}'
CONTRACT_MODELS = {
    "modernbert": ("modernbert", {"head": "masked-lm"}, "encode: {sparse: {kind: splade}}"),
    "qwen2": ("qwen2", {}, "encode: {dense: {dims: 64}}"),
    "qwen3": ("qwen3", {"head": "causal-lm"}, YES_NO),
}

KINDS = ["modernbert", "qwen2", "qwen3"]


def reference(folder, seqs):
    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        hidden = model(**padded(seqs, model.config.pad_token_id)).last_hidden_state
    return [hidden[i, : len(s)] for i, s in enumerate(seqs)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_size", [1, 2, 9, 33])
def test_token_states_match_reference(tiny_models, kind, batch_size, attention_path):
    folder = tiny_models(kind)
    runner = runner_class(kind).load(folder, device=CPU, dtype=torch.float32)
    seqs = ragged(batch_size, 150, seed=batch_size)
    batch = PackedBatch.from_sequences(seqs)
    ours = per_sequence(runner.forward(batch), batch)
    for i, ref in enumerate(reference(folder, seqs)):
        assert max_abs(ours[i], ref) <= TOLERANCE, f"{kind}: sequence {i} (length {len(seqs[i])})"


def test_qwen_last_token_pooling_matches_reference(tiny_models, attention_path):
    """Qwen3-Embedding pools the last token: causal attention makes it the only one that saw everything."""
    folder = tiny_models("qwen3")
    runner = runner_class("qwen3").load(folder, device=CPU, dtype=torch.float32)
    seqs = ragged(17, 120, seed=3)
    batch = PackedBatch.from_sequences(seqs)
    ours = pool(runner.forward(batch), batch, "last")
    ref = torch.stack([h[-1] for h in reference(folder, seqs)])
    assert max_abs(ours, ref) <= TOLERANCE


@pytest.mark.parametrize("kind", ["modernbert", "qwen3"])
def test_biased_variants_match_reference(tiny_models, kind, attention_path):
    """ModernBERT with every bias switched on; Qwen3 with attention_bias — both are config options."""
    options = ({"attention_bias": True, "mlp_bias": True, "norm_bias": True} if kind == "modernbert"
               else {"attention_bias": True})
    folder = tiny_models(kind, **options)
    runner = runner_class(kind).load(folder, device=CPU, dtype=torch.float32)
    seqs = ragged(7, 100, seed=11)
    batch = PackedBatch.from_sequences(seqs)
    ours = per_sequence(runner.forward(batch), batch)
    for i, ref in enumerate(reference(folder, seqs)):
        assert max_abs(ours[i], ref) <= TOLERANCE


@pytest.mark.parametrize("kind", KINDS)
def test_precision_slots_and_int8_stay_close(tiny_models, kind):
    """The precision machinery reaches these runners: every linear layer is a slot, int8 stays close."""
    from sie.models.precision import apply_cpu_precision

    folder = tiny_models(kind)
    runner = runner_class(kind).load(folder, device=CPU, dtype=torch.float32)
    assert {s.role for s in runner.linear_slots()} == {"attention", "attention_out", "ffn"}
    seqs = ragged(9, 60, seed=5)
    batch = PackedBatch.from_sequences(seqs)
    before = runner.forward(batch)
    assert apply_cpu_precision(runner, "int8", [batch]) == "int8"
    after = runner.forward(batch)
    cos = torch.nn.functional.cosine_similarity(before, after, dim=-1)
    assert cos.min().item() > 0.95
