"""The tensors an object really holds, found through Python's object graph (`gc.get_referents`): the
reference the footprint and placement tests check sie's own walk (sie.models.placement) against. A tensor
kept anywhere (a closure, a set, a module attribute that is neither parameter nor buffer) is found here."""

from __future__ import annotations

import gc
import types

import torch


def reachable_tensors(*roots: object) -> list[torch.Tensor]:
    """Every tensor reachable from `roots` through any Python reference, except through classes, modules
    and functions' globals (which lead to everything loaded)."""
    tensors: list[torch.Tensor] = []
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            tensors.append(obj)
        elif isinstance(obj, types.FunctionType):
            stack.extend(cell.cell_contents for cell in obj.__closure__ or () if cell.cell_contents is not None)
            stack.extend(obj.__defaults__ or ())
        elif not isinstance(obj, (type, types.ModuleType)):
            stack.extend(gc.get_referents(obj))
    return tensors


def reachable_storages(*roots: object) -> dict[tuple[torch.device, int], int]:
    """The storages of `reachable_tensors(*roots)`, each once: (device, address) → bytes."""
    return {(t.device, t.untyped_storage().data_ptr()): t.untyped_storage().nbytes() for t in reachable_tensors(*roots)}
