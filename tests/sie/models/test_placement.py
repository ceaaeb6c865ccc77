"""sie.models.placement: one walk finds a runner's tensors, to count them (each storage once) and to move
them between tiers (every tensor, and the holders' `device`, follow)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from object_graph import reachable_tensors

from sie.models.linear import Linear
from sie.models.placement import move_tensors, resident_bytes


@dataclass(frozen=True)
class FrozenSettings:  # like GlinerConfig: a frozen holder without tensors
    width: int


class Holder:  # the walk enters holders defined under sie.*: this one says it is
    __module__ = "sie.tests.holder"

    def __init__(self, shared: torch.Tensor) -> None:
        self.device = shared.device
        self.linear = Linear(shared, None)
        self.tied = [shared, shared[:2]]                      # the same storage twice, once as a view
        self.table = {"ids": torch.arange(3)}                 # int64
        self.pair = (torch.zeros(2, dtype=torch.float16), None)
        self.module = torch.nn.Linear(4, 2, bias=False)
        self.settings = FrozenSettings(4)


def test_each_storage_is_counted_once():
    shared = torch.zeros(5, 4)
    holder = Holder(shared)
    assert resident_bytes(holder) == 5 * 4 * 4 + 3 * 8 + 2 * 2 + 2 * 4 * 4
    assert resident_bytes(holder, holder.linear) == resident_bytes(holder)


def test_move_reaches_every_tensor_and_device_and_leaves_frozen_holders_alone():
    holder = Holder(torch.zeros(5, 4))
    meta = torch.device("meta")
    move_tensors(holder, meta)
    assert {t.device for t in reachable_tensors(holder)} == {meta}
    assert holder.device == meta
    assert holder.settings == FrozenSettings(4)


def test_a_gliner_runner_moves_between_tiers(minilm_path, tmp_path):
    """GLiNER keeps a frozen dataclass (its config) next to its tensors; moving used to write to it."""
    import tiny_models as tm

    from sie.models import runner_class

    runner = runner_class("gliner").load(tm.build_gliner(tmp_path / "g", minilm_path), device=torch.device("cpu"),
                                         dtype=torch.float32)
    meta = torch.device("meta")
    move_tensors(runner, meta)
    assert {t.device for t in reachable_tensors(runner)} == {meta}
    assert runner.device == runner.backbone.device == meta
