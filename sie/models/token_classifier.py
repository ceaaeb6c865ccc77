"""Token-classification heads (NER taggers): packed token states → label logits per token.

BERT, RoBERTa/XLM-R, DeBERTa and DistilBERT apply one `classifier` linear layer to every token;
ModernBERT first runs its prediction head (head.dense → act → head.norm). Dropout is left out.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sie.errors import ModelLoadFailed
from sie.models.activations import activation
from sie.models.linear import Linear
from sie.models.norms import layer_norm
from sie.models.weights import read_named

SUPPORTED = ("bert", "roberta", "xlm-roberta", "camembert", "deberta", "deberta-v2", "distilbert", "modernbert")


class TokenClassifierHead:
    def __init__(self, config, tensors: dict[str, torch.Tensor], *, device: torch.device, dtype: torch.dtype) -> None:
        w = {k: v.to(device=device, dtype=dtype) for k, v in tensors.items()}
        self.dense = None
        self.norm = None
        self.eps = getattr(config, "norm_eps", 1e-5)
        if config.model_type == "modernbert":
            self.dense = Linear(w["head.dense.weight"], w.get("head.dense.bias"),
                                activation(config.classifier_activation))
            self.norm = (w["head.norm.weight"], w.get("head.norm.bias"))
        self.out = Linear(w["classifier.weight"], w.get("classifier.bias"))
        self.labels = [config.id2label[i] for i in range(self.out.weight.shape[0])]

    @classmethod
    def load(cls, folder: Path, config, *, device: torch.device, dtype: torch.dtype) -> TokenClassifierHead:
        if config.model_type not in SUPPORTED:
            raise ModelLoadFailed(f"no token-classification head for model_type '{config.model_type}'; "
                                  f"supported: {', '.join(SUPPORTED)}")
        required = ["classifier.weight"] + (["head.dense.weight", "head.norm.weight"]
                                            if config.model_type == "modernbert" else [])
        tensors = read_named(folder, required)
        tensors |= read_named(folder, ["classifier.bias", "head.dense.bias", "head.norm.bias"], required=False)
        return cls(config, tensors, device=device, dtype=dtype)

    @torch.inference_mode()
    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """[T, H] → [T, num_labels] float32 logits."""
        x = hidden
        if self.dense is not None:
            x = layer_norm(self.dense(x), *self.norm, self.eps)
        return self.out(x).float()
