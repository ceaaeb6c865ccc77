"""Memory budgets and model footprints.

A model's footprint = the bytes of every tensor its runner and heads hold (estimated before loading
from the checkpoint's headers, counted after it by sie.models.placement.resident_bytes) + an
activation reserve derived from its token budget, so that admitting it can never leave the device
unable to run a full batch.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from safetensors import safe_open

from sie.errors import SieError

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_budget(value: str | int | float | None, total: int, field: str) -> int | None:
    """'8GiB', '512MB', 1234 (bytes) or a fraction like 0.5 / '50%' of `total`; None keeps the default."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * total) if 0 <= value <= 1 and isinstance(value, float) else int(value)
    text = str(value).strip().lower().replace(" ", "")
    if text.endswith("%"):
        return int(float(text[:-1]) / 100 * total)
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)([a-z]*)", text)
    if not m or m.group(2) not in _UNITS:
        raise SieError(f"{field}: expected bytes ('8GiB', '512MB'), a fraction (0.5) or a percentage "
                       f"('50%'), got {value!r}", field=field)
    number = float(m.group(1))
    if m.group(2) == "" and number <= 1 and "." in m.group(1):
        return int(number * total)
    return int(number * _UNITS[m.group(2)])


def total_ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def device_budget(device: torch.device, setting: str | int | float | None) -> int:
    """Default: 90% of free GPU memory on CUDA; half of the RAM on CPU."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return parse_budget(setting, free, "memory_budget") or int(0.9 * free)
    return parse_budget(setting, total_ram(), "memory_budget") or total_ram() // 2


def host_budget(device: torch.device, setting: str | int | float | None) -> int:
    """Host-RAM tier for models evicted from the device. Default: 30% of RAM on CUDA, off on CPU
    (there the device already is host RAM: keeping a second tier would only double-count it)."""
    default = int(0.3 * total_ram()) if device.type == "cuda" else 0
    value = parse_budget(setting, total_ram(), "host_memory_budget")
    return default if value is None else value


def weights_bytes(folder: Path, dtype: torch.dtype) -> int:
    """Bytes the checkpoint's tensors take once converted to `dtype` (read from safetensors headers)."""
    elem = torch.tensor([], dtype=dtype).element_size()
    total = 0
    for f in folder.glob("*.safetensors"):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                shape = st.get_slice(key).get_shape()
                n = 1
                for d in shape:
                    n *= d
                total += n * elem
    return total


def activation_reserve(token_budget: int, hidden: int, intermediate: int, heads: int, max_len: int,
                       elem: int) -> int:
    """Peak activation bytes of one forward pass: a layer's hidden/QKV/FFN tensors for every token
    plus padded attention scores (fp32) for a group as long as the longest input."""
    per_token = (6 * hidden + 2 * intermediate) * elem
    scores = token_budget * max_len * heads * 4
    return token_budget * per_token + scores
