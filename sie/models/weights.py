"""Reading a weights folder: safetensors only (pickled .bin files can run code and are refused)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from sie.errors import ModelLoadFailed


def load_safetensors(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a (possibly sharded) safetensors checkpoint in `folder`."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [folder / s for s in shards]
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        others = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt"))
        found = f" (found {', '.join(others)}: sie loads safetensors only)" if others else ""
        raise ModelLoadFailed(f"no *.safetensors weights in {folder}{found}")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        tensors.update(load_file(str(f)))
    return tensors


def strip_prefix(tensors: dict[str, torch.Tensor], anchor: str) -> dict[str, torch.Tensor]:
    """Drop the wrapper prefix ('bert.', 'roberta.', 'model.') found in front of `anchor`."""
    for key in tensors:
        if key.endswith(anchor):
            prefix = key[: -len(anchor)]
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    raise ModelLoadFailed(f"checkpoint has no tensor named '*{anchor}'; is the architecture right?")
