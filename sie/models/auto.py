"""Fallback runner on transformers `AutoModel` for architectures without an own runner.

Same contract as the own runners (packed in, packed token states out); padding happens only here,
inside the adapter. Never passes trust_remote_code, and loads safetensors only.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sie.errors import ModelLoadFailed
from sie.models.runner import PackedBatch, Runner

# Card `architecture` → runner class, read by sie/models/__init__.py without importing this module.
ARCHITECTURES = {"auto": "AutoModelRunner"}


class AutoModelRunner(Runner):
    """No `linear_slots` (the layers run inside transformers: CPU precision modes other than fp32 do not
    apply) and no `max_positions`."""

    def __init__(self, model, *, device: torch.device, dtype: torch.dtype) -> None:
        self.model = model
        self.config = model.config
        self.device, self.dtype = device, dtype
        self.hidden_size = model.config.hidden_size
        self.pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0

    @classmethod
    def load(cls, path: Path, *, device: torch.device, dtype: torch.dtype) -> AutoModelRunner:
        from transformers import AutoModel

        try:
            model = AutoModel.from_pretrained(path, dtype=dtype, use_safetensors=True, trust_remote_code=False)
        except Exception as e:
            raise ModelLoadFailed(f"{path}: transformers AutoModel could not load it: {e}") from None
        return cls(model.to(device).eval(), device=device, dtype=dtype)

    @torch.inference_mode()
    def forward(self, batch: PackedBatch) -> torch.Tensor:
        B, L = batch.num_seqs, batch.max_seqlen
        lengths = torch.tensor(batch.lengths, device=self.device)
        real = torch.arange(L, device=self.device)[None, :] < lengths[:, None]       # [B, L]
        ids = torch.full((B, L), self.pad_id, dtype=torch.long, device=self.device)
        ids[real] = batch.input_ids
        mask = real
        if batch.key_lengths is not None:  # tokens past a sequence's key length are queries only
            keys = torch.tensor(batch.key_lengths, device=self.device)
            mask = torch.arange(L, device=self.device)[None, :] < keys[:, None]
        kwargs = {"input_ids": ids, "attention_mask": mask.long()}
        if batch.token_type_ids is not None:
            tt = torch.zeros_like(ids)
            tt[real] = batch.token_type_ids
            kwargs["token_type_ids"] = tt
        hidden = self.model(**kwargs).last_hidden_state                              # [B, L, H]
        return hidden[real]
