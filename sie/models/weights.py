"""Reading a weights folder: safetensors for model bodies (pickled .bin files can run code and are
refused); the few pickled head files some formats ship go through torch's weights-only unpickler.

Every reader here returns tensors under their current names (legacy names such as `LayerNorm.gamma`
renamed as transformers renames them: sie.models.checkpoint_names), so runners and heads ask for one
spelling only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from sie.errors import ModelLoadFailed
from sie.models.checkpoint_names import current_name, with_current_names


def load_safetensors(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a (possibly sharded) safetensors checkpoint in `folder`."""
    files = checkpoint_files(folder)
    if not files:
        others = sorted(p.name for p in folder.glob("*.bin")) + sorted(p.name for p in folder.glob("*.pt"))
        found = f" (found {', '.join(others)}: sie loads safetensors only)" if others else ""
        raise ModelLoadFailed(f"no *.safetensors weights in {folder}{found}")
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        tensors.update(load_file(str(f)))
    return with_current_names(tensors, folder)


def strip_prefix(tensors: dict[str, torch.Tensor], anchor: str) -> dict[str, torch.Tensor]:
    """Drop the wrapper prefix ('bert.', 'roberta.', 'model.') found in front of `anchor`."""
    for key in tensors:
        if key.endswith(anchor):
            prefix = key[: -len(anchor)]
            return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    raise ModelLoadFailed(f"checkpoint has no tensor named '*{anchor}'; is the architecture right?")


def checkpoint_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        return [folder / s for s in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    return sorted(folder.glob("*.safetensors"))


def read_tensors(folder: Path, wanted: Callable[[str], bool]) -> dict[str, torch.Tensor]:
    """Only the tensors whose (current) names satisfy `wanted` (heads read a few matrices, not the whole model)."""
    found: dict[str, torch.Tensor] = {}
    for f in checkpoint_files(folder):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                if wanted(current_name(key)):
                    found[key] = st.get_tensor(key)
    return with_current_names(found, folder)


def load_tensor_file(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of one file. Besides safetensors, this reads the pickled state dicts a few model
    formats ship (bge-m3's colbert_linear.pt / sparse_linear.pt, GLiNER's pytorch_model.bin) with
    torch's weights-only unpickler, which refuses anything but tensors and containers (no code runs).
    """
    if not path.exists():
        raise ModelLoadFailed(f"{path.parent}: missing weights file {path.name}")
    if path.suffix == ".safetensors":
        return with_current_names(load_file(str(path)), path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelLoadFailed(f"{path}: not a weights-only tensor file ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadFailed(f"{path}: expected a state dict of tensors")
    return with_current_names(state, path)


def find_tensor(tensors: dict[str, torch.Tensor], name: str) -> str | None:
    """The key equal to `name` or ending with '.' + name (checkpoints wrap names in 'bert.', 'model.')."""
    if name in tensors:
        return name
    hits = [k for k in tensors if k.endswith("." + name)]
    return min(hits, key=len) if hits else None


def read_named(folder: Path, names: list[str], *, required: bool = True) -> dict[str, torch.Tensor]:
    """Tensors by name, wherever the checkpoint's wrapper prefix puts them ('classifier.weight' matches
    'classifier.weight'; 'pooler.dense.weight' matches 'bert.pooler.dense.weight'). Missing names are an
    error when `required`, else left out."""
    found = read_tensors(folder, lambda k: any(k == n or k.endswith("." + n) for n in names))
    out: dict[str, torch.Tensor] = {}
    for n in names:
        key = find_tensor(found, n)
        if key is not None:
            out[n] = found[key]
        elif required:
            raise ModelLoadFailed(f"{folder}: checkpoint has no tensor '{n}' (needed by the card's head)")
    return out


def build_runner(cls, path: Path, *, device: torch.device, dtype: torch.dtype):
    """`cls(config, tensors, device=, dtype=)` from a weights folder; a missing tensor names itself."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    try:
        return cls(config, load_safetensors(path), device=device, dtype=dtype)
    except KeyError as e:
        raise ModelLoadFailed(f"{path}: checkpoint is missing tensor {e}") from None
