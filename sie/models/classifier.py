"""Sequence-classification heads (cross-encoders, NLI models): packed token states → logits per sequence.

Each transformers family pools and projects differently; the recipe per model_type is data:
- bert:               [CLS] → pooler.dense → tanh → classifier
- roberta/xlm-roberta: [CLS] → classifier.dense → tanh → classifier.out_proj
- deberta(-v2):       [CLS] → pooler.dense → pooler_hidden_act → classifier
- distilbert:         [CLS] → pre_classifier → ReLU → classifier
- modernbert:         [CLS] or mean (classifier_pooling) → head.dense → act → head.norm → classifier
- qwen2/qwen3:        last token → score (no bias)
Dropout is an identity at inference and is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from sie.errors import ModelLoadFailed
from sie.models.activations import activation
from sie.models.linear import Linear
from sie.models.norms import layer_norm
from sie.models.pooling import pool
from sie.models.runner import PackedBatch
from sie.models.weights import read_named


@dataclass(frozen=True)
class _Recipe:
    pooling: str
    dense: str | None         # first projection (None: straight to the classifier)
    act: str | None           # config attribute naming its activation, or a fixed name after "="
    norm: str | None          # LayerNorm after the activation (ModernBERT)
    out: str                  # the final projection to num_labels


RECIPES = {
    "bert": _Recipe("cls", "pooler.dense", "=tanh", None, "classifier"),
    "roberta": _Recipe("cls", "classifier.dense", "=tanh", None, "classifier.out_proj"),
    "xlm-roberta": _Recipe("cls", "classifier.dense", "=tanh", None, "classifier.out_proj"),
    "camembert": _Recipe("cls", "classifier.dense", "=tanh", None, "classifier.out_proj"),
    "deberta-v2": _Recipe("cls", "pooler.dense", "pooler_hidden_act", None, "classifier"),
    "deberta": _Recipe("cls", "pooler.dense", "pooler_hidden_act", None, "classifier"),
    "distilbert": _Recipe("cls", "pre_classifier", "=relu", None, "classifier"),
    "modernbert": _Recipe("cls", "head.dense", "classifier_activation", "head.norm", "classifier"),
    "qwen2": _Recipe("last", None, None, None, "score"),
    "qwen3": _Recipe("last", None, None, None, "score"),
}


def _activation(config, spec: str | None):
    if spec is None:
        return None
    name = spec[1:] if spec.startswith("=") else getattr(config, spec)
    return torch.tanh if name == "tanh" else activation(name)


class SequenceClassifierHead:
    def __init__(self, config, tensors: dict[str, torch.Tensor], *, device: torch.device, dtype: torch.dtype) -> None:
        recipe = RECIPES[config.model_type]
        w = {k: v.to(device=device, dtype=dtype) for k, v in tensors.items()}
        self.pooling = getattr(config, "classifier_pooling", recipe.pooling) if recipe.norm else recipe.pooling
        self.dense = None
        if recipe.dense is not None:
            self.dense = Linear(w[f"{recipe.dense}.weight"], w.get(f"{recipe.dense}.bias"),
                                _activation(config, recipe.act))
        self.norm = None if recipe.norm is None else (w[f"{recipe.norm}.weight"], w.get(f"{recipe.norm}.bias"))
        self.eps = getattr(config, "norm_eps", 1e-5)
        self.out = Linear(w[f"{recipe.out}.weight"], w.get(f"{recipe.out}.bias"))
        self.labels = [config.id2label[i] for i in range(self.out.weight.shape[0])]

    @classmethod
    def load(cls, folder: Path, config, *, device: torch.device, dtype: torch.dtype) -> SequenceClassifierHead:
        recipe = RECIPES.get(config.model_type)
        if recipe is None:
            raise ModelLoadFailed(f"no sequence-classification head for model_type '{config.model_type}'; "
                                  f"supported: {', '.join(sorted(RECIPES))}")
        names = [f"{recipe.out}.weight", f"{recipe.out}.bias"]
        for part in (recipe.dense, recipe.norm):
            if part:
                names += [f"{part}.weight", f"{part}.bias"]
        tensors = read_named(folder, [n for n in names if not n.endswith("bias")])
        tensors |= read_named(folder, [n for n in names if n.endswith("bias")], required=False)
        return cls(config, tensors, device=device, dtype=dtype)

    @torch.inference_mode()
    def __call__(self, hidden: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        """[T, H] packed token states → [B, num_labels] float32 logits."""
        x = pool(hidden, batch, self.pooling).to(hidden.dtype)
        if self.dense is not None:
            x = self.dense(x)
        if self.norm is not None:
            x = layer_norm(x, *self.norm, self.eps)
        return self.out(x).float()
