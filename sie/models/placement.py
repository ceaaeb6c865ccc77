"""Moving a runner's tensors between devices (device ↔ host tier) without knowing its layout.

Runners keep weights in plain attributes, dataclasses, lists and `Linear` objects (see linear.py),
or wrap an nn.Module (the fallback runner); this walks all of them.
"""

from __future__ import annotations

import torch


def move_tensors(obj: object, device: torch.device, *, pin: bool = False, _seen: set | None = None) -> object:
    """Move every tensor reachable from `obj` to `device` in place; returns obj (or the moved tensor)."""
    seen = _seen if _seen is not None else set()
    if isinstance(obj, torch.Tensor):
        moved = obj.to(device, non_blocking=True)
        return moved.pin_memory() if pin and device.type == "cpu" and torch.cuda.is_available() else moved
    if isinstance(obj, torch.nn.Module):
        return obj.to(device)
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), torch.dtype, torch.device)):
        return obj
    seen.add(id(obj))
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            obj[i] = move_tensors(v, device, pin=pin, _seen=seen)
        return obj
    if isinstance(obj, tuple):
        return type(obj)(move_tensors(v, device, pin=pin, _seen=seen) for v in obj)
    if isinstance(obj, dict):
        for k, v in obj.items():
            obj[k] = move_tensors(v, device, pin=pin, _seen=seen)
        return obj
    if _is_holder(obj):
        for k, v in list(vars(obj).items()):
            setattr(obj, k, move_tensors(v, device, pin=pin, _seen=seen))
        if hasattr(obj, "device") and isinstance(obj.device, torch.device):
            obj.device = device
    return obj


def _is_holder(obj: object) -> bool:
    """Our own weight holders (Linear, runners, layer dataclasses); configs and functions are left alone."""
    return hasattr(obj, "__dict__") and type(obj).__module__.startswith("sie.")
