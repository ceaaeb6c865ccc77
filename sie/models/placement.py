"""A runner's (and its heads') tensors, found without knowing their layout: moved between devices
(device ↔ host tier) and counted for the memory budget.

Runners and heads keep weights in plain attributes, dataclasses, lists, tuples, dicts and `Linear`
objects (see linear.py), or wrap an nn.Module (the fallback runner, GLiNER's LSTM); one walk reaches
all of them, so what is counted is what is moved, and a new runner needs no bookkeeping of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sie.models.runner import Runner

_LEAVES = (str, bytes, int, float, bool, type(None), torch.dtype)


@dataclass(frozen=True)
class _Visit:
    tensor: Callable[[torch.Tensor], torch.Tensor]
    module: Callable[[torch.nn.Module], torch.nn.Module]
    device: Callable[[torch.device], torch.device]


def _walk(obj: object, visit: _Visit, seen: set[int]) -> object:
    """`obj` with every reachable tensor, nn.Module and device replaced by what `visit` returns for it.
    Containers and our own holders are updated in place, and only where a value changed (so a walk that
    changes nothing writes nothing: frozen holders such as GlinerConfig stay untouched)."""
    if isinstance(obj, torch.Tensor):
        return visit.tensor(obj)
    if isinstance(obj, torch.nn.Module):
        return visit.module(obj)
    if isinstance(obj, torch.device):
        return visit.device(obj)
    if id(obj) in seen or isinstance(obj, _LEAVES):
        return obj
    seen.add(id(obj))
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            new = _walk(v, visit, seen)
            if new is not v:
                obj[i] = new
        return obj
    if isinstance(obj, tuple):
        items = [_walk(v, visit, seen) for v in obj]
        if all(a is b for a, b in zip(items, obj, strict=True)):
            return obj
        return type(obj)(items) if type(obj) is tuple else type(obj)(*items)  # a NamedTuple takes fields
    if isinstance(obj, dict):
        for k, v in list(obj.items()):
            new = _walk(v, visit, seen)
            if new is not v:
                obj[k] = new
        return obj
    if _is_holder(obj):
        for k, v in list(vars(obj).items()):
            new = _walk(v, visit, seen)
            if new is not v:
                setattr(obj, k, new)
    return obj


def _is_holder(obj: object) -> bool:
    """Our own weight holders (Linear, heads, layer dataclasses) and every runner, wherever its class is
    defined; configs, tokenizers and functions are left alone."""
    return isinstance(obj, Runner) or (hasattr(obj, "__dict__") and type(obj).__module__.startswith("sie."))


def move_tensors(obj: object, device: torch.device, *, pin: bool = False) -> object:
    """Move every tensor reachable from `obj` to `device` in place (holders' `device` attributes follow);
    returns obj (or the moved tensor)."""

    def move(t: torch.Tensor) -> torch.Tensor:
        moved = t.to(device, non_blocking=True)
        return moved.pin_memory() if pin and device.type == "cpu" and torch.cuda.is_available() else moved

    return _walk(obj, _Visit(move, lambda m: m.to(device), lambda _: device), set())


def resident_bytes(*objs: object) -> int:
    """Bytes of every tensor storage reachable from `objs`, each storage counted once: tied or shared
    tensors and views of one another are one allocation."""
    storages: dict[tuple[torch.device, int], int] = {}

    def count(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[(t.device, storage.data_ptr())] = storage.nbytes()
        return t

    def count_module(m: torch.nn.Module) -> torch.nn.Module:
        for t in (*m.parameters(), *m.buffers()):
            count(t)
        return m

    _walk(objs, _Visit(count, count_module, lambda d: d), set())
    return sum(storages.values())
