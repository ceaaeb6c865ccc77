"""The CUDA side of the memory budgets, on a CPU machine: torch.cuda.mem_get_info stands in for the device
(a test double of the GPU, not of our code); the host tier's default needs no device at all."""

from __future__ import annotations

import torch

from sie.runtime.memory import device_budget, host_budget, total_ram

CUDA = torch.device("cuda")


def test_device_budget_on_cuda_is_90_percent_of_free_memory_or_the_setting(monkeypatch):
    free, total = 20 << 30, 80 << 30
    seen = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: seen.append(device) or (free, total))
    assert device_budget(CUDA, None) == int(0.9 * free)
    assert device_budget(CUDA, "50%") == free // 2          # a share of what is free, not of the card
    assert device_budget(CUDA, "8GiB") == 8 << 30
    assert seen == [CUDA] * 3


def test_host_tier_defaults_to_30_percent_of_ram_on_cuda_and_off_on_cpu():
    assert host_budget(CUDA, None) == int(0.3 * total_ram())
    assert host_budget(torch.device("cpu"), None) == 0
    assert host_budget(CUDA, "0") == 0
