"""SPLADE sparse head: the masked-LM head's logits → log(1 + ReLU) → max over each sequence's tokens.

Families name the MLM head differently (transform → activation → LayerNorm → decoder over the
vocabulary; the decoder is usually tied to the input embeddings and then absent from the file):
- bert:        cls.predictions.transform.{dense,LayerNorm}, cls.predictions.decoder, cls.predictions.bias
- roberta/xlm-r: lm_head.{dense,layer_norm,decoder}, lm_head.bias
- distilbert:  vocab_transform, vocab_layer_norm, vocab_projector
- modernbert:  head.{dense,norm}, decoder (bias when decoder_bias)
The [tokens, vocab] logits never exist all at once: at most TOKENS_PER_CHUNK tokens go through the
vocabulary projection at a time, and each sequence keeps only its running max.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sie.errors import ModelLoadFailed
from sie.models.activations import activation
from sie.models.linear import Linear
from sie.models.norms import layer_norm
from sie.models.runner import PackedBatch
from sie.models.weights import read_named


@dataclass(frozen=True)
class _Names:
    dense: str
    act: str            # config attribute naming the activation
    norm: str
    eps: str            # config attribute holding the norm epsilon
    decoder: str
    bias: tuple[str, ...]
    embeddings: str     # the tied input embeddings


FAMILIES = {
    "bert": _Names("cls.predictions.transform.dense", "hidden_act", "cls.predictions.transform.LayerNorm",
                   "layer_norm_eps", "cls.predictions.decoder",
                   ("cls.predictions.decoder.bias", "cls.predictions.bias"), "word_embeddings.weight"),
    "roberta": _Names("lm_head.dense", "=gelu", "lm_head.layer_norm", "layer_norm_eps", "lm_head.decoder",
                      ("lm_head.decoder.bias", "lm_head.bias"), "word_embeddings.weight"),
    "distilbert": _Names("vocab_transform", "activation", "vocab_layer_norm", "=1e-12", "vocab_projector",
                         ("vocab_projector.bias",), "word_embeddings.weight"),
    "modernbert": _Names("head.dense", "classifier_activation", "head.norm", "norm_eps", "decoder",
                         ("decoder.bias",), "tok_embeddings.weight"),
}
FAMILIES["xlm-roberta"] = FAMILIES["camembert"] = FAMILIES["roberta"]
TOKENS_PER_CHUNK = 1024


def _config_value(config, spec: str):
    return spec[1:] if spec.startswith("=") else getattr(config, spec)


class SpladeHead:
    def __init__(self, config, tensors: dict[str, torch.Tensor], names: _Names, *, device: torch.device,
                 dtype: torch.dtype) -> None:
        w = {k: v.to(device=device, dtype=dtype) for k, v in tensors.items()}
        self.transform = Linear(w[f"{names.dense}.weight"], w.get(f"{names.dense}.bias"),
                                activation(_config_value(config, names.act)))
        self.norm = (w[f"{names.norm}.weight"], w.get(f"{names.norm}.bias"))
        self.eps = float(_config_value(config, names.eps))
        decoder = w.get(f"{names.decoder}.weight", w.get(names.embeddings))
        bias = next((w[b] for b in names.bias if b in w), None)
        self.decoder = Linear(decoder, bias)
        self.vocab_size = decoder.shape[0]

    @classmethod
    def load(cls, folder: Path, config, *, device: torch.device, dtype: torch.dtype) -> SpladeHead:
        names = FAMILIES.get(config.model_type)
        if names is None:
            raise ModelLoadFailed(f"no masked-LM (SPLADE) head for model_type '{config.model_type}'; "
                                  f"supported: {', '.join(sorted(FAMILIES))}")
        tensors = read_named(folder, [f"{names.dense}.weight", f"{names.norm}.weight"])
        tensors |= read_named(folder, [f"{names.dense}.bias", f"{names.norm}.bias", f"{names.decoder}.weight",
                                       *names.bias], required=False)
        if f"{names.decoder}.weight" not in tensors:  # tied to the input embeddings
            tensors |= read_named(folder, [names.embeddings])
        return cls(config, tensors, names, device=device, dtype=dtype)

    def token_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(layer_norm(self.transform(hidden), *self.norm, self.eps))

    @torch.inference_mode()
    def __call__(self, hidden: torch.Tensor, batch: PackedBatch,
                 skip_ids: torch.Tensor | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per sequence: (token ids ascending int32, weights float32) of its non-zero entries."""
        cu = batch.cu_seqlens.tolist()
        rows: list[torch.Tensor] = []
        first = 0
        while first < batch.num_seqs:
            # Short sequences share one [tokens, vocab] GEMM; a long one runs alone, chunk by chunk.
            last = first + 1
            while last < batch.num_seqs and cu[last + 1] - cu[first] <= TOKENS_PER_CHUNK:
                last += 1
            if last - first == 1:
                rows.append(self._max_weights(hidden[cu[first]:cu[last]]))
            else:
                w = torch.log1p(torch.relu(self.token_logits(hidden[cu[first]:cu[last]]).float()))
                rows.extend(w[cu[i] - cu[first]:cu[i + 1] - cu[first]].amax(0) for i in range(first, last))
            first = last
        out = []
        for row in rows:
            if skip_ids is not None and len(skip_ids):
                row[skip_ids] = 0
            idx = torch.nonzero(row, as_tuple=True)[0]
            out.append((idx.to(torch.int32).cpu().numpy(), row[idx].cpu().numpy()))
        return out

    def _max_weights(self, hidden: torch.Tensor) -> torch.Tensor:
        best = None
        for t in range(0, hidden.shape[0], TOKENS_PER_CHUNK):
            w = torch.log1p(torch.relu(self.token_logits(hidden[t:t + TOKENS_PER_CHUNK]).float())).amax(0)
            best = w if best is None else torch.maximum(best, w)
        return best


