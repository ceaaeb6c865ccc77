"""Multivector (ColBERT) head: token states → linear projection → L2 normalization, one vector per token.

Input side, as the ColBERT reference prepares it (colbert/modeling/tokenization/*):
- a marker token after [CLS]: [unused0] for queries ("[Q]"), [unused1] for documents ("[D]");
- query augmentation: queries are padded with [MASK] up to query_maxlen. Those tokens produce vectors
  (they act as learned query expansion) but, unless attend_to_mask_tokens, no other token attends to
  them: the runner sees them as queries and not as keys (`PackedBatch.key_lengths`);
- documents drop the vectors of punctuation tokens (mask_punctuation) after the forward pass.
bge-m3's multivector output is the same head with a bias, no markers, and the [CLS] vector dropped.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from sie.errors import ModelLoadFailed
from sie.models.linear import Linear
from sie.models.runner import PackedBatch
from sie.models.weights import find_tensor, load_tensor_file, read_named


def with_marker(ids: list[int], marker: int | None) -> list[int]:
    """Insert the role marker after the first ([CLS]) token."""
    return ids if marker is None else [*ids[:1], marker, *ids[1:]]


def augmented_query(ids: list[int], length: int, mask_id: int, attend_to_mask: bool) -> tuple[list[int], int]:
    """Pad a (marked) query with [MASK] to `length`; returns (ids, number of tokens other tokens may attend)."""
    real = len(ids)
    ids = ids + [mask_id] * max(0, length - real)
    return ids, (len(ids) if attend_to_mask else real)


def punctuation_ids(tokenizer: Tokenizer) -> list[int]:
    """The first token id of every ASCII punctuation character (ColBERT's skiplist)."""
    ids = set()
    for symbol in string.punctuation:
        enc = tokenizer.encode(symbol, add_special_tokens=False).ids
        if enc:
            ids.add(enc[0])
    return sorted(ids)


class ColbertHead:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, normalize: bool,
                 skip_first_token: bool) -> None:
        self.projection = Linear(weight, bias)
        self.normalize = normalize
        self.skip_first_token = skip_first_token

    @classmethod
    def load(cls, folder: Path, projection: str, *, normalize: bool, skip_first_token: bool,
             device: torch.device, dtype: torch.dtype) -> ColbertHead:
        """`projection`: a tensor name in the checkpoint ('linear.weight') or 'file:tensor'."""
        if ":" in projection:
            file, name = projection.split(":", 1)
            tensors = load_tensor_file(folder / file)
            key = find_tensor(tensors, name)
            if key is None:
                raise ModelLoadFailed(f"{folder / file}: no tensor '{name}' "
                                      "(capabilities.encode.multivector.projection)")
            weight = tensors[key]
            bias_key = find_tensor(tensors, name.rsplit(".", 1)[0] + ".bias" if "." in name else "bias")
            bias = tensors[bias_key] if bias_key else None
        else:
            weight = read_named(folder, [projection])[projection]
            bias_name = projection.rsplit(".", 1)[0] + ".bias"
            bias = read_named(folder, [bias_name], required=False).get(bias_name)
        bias = None if bias is None else bias.to(device=device, dtype=dtype)
        return cls(weight.to(device=device, dtype=dtype), bias, normalize=normalize, skip_first_token=skip_first_token)

    @property
    def dims(self) -> int:
        return self.projection.weight.shape[0]

    @torch.inference_mode()
    def __call__(self, hidden: torch.Tensor, batch: PackedBatch,
                 skip_ids: torch.Tensor | None = None) -> list[np.ndarray]:
        """Per sequence: [kept tokens, dims] float32. `skip_ids`: token ids whose vectors are dropped."""
        vectors = self.projection(hidden).float()
        if self.normalize:
            vectors = F.normalize(vectors, dim=-1)
        keep = torch.ones(batch.num_tokens, dtype=torch.bool, device=hidden.device)
        if skip_ids is not None and len(skip_ids):
            keep &= ~torch.isin(batch.input_ids, skip_ids)
        if self.skip_first_token:
            keep[batch.cu_seqlens[:-1].long()] = False
        cu = batch.cu_seqlens.tolist()
        return [vectors[cu[i]:cu[i + 1]][keep[cu[i]:cu[i + 1]]].cpu().numpy() for i in range(batch.num_seqs)]
