"""CPU compute precision: which of a runner's linear layers (its `linear_slots`) run in fp32, bf16 or int8.

- `fp32`:  everything fp32; matches the reference to ~1e-6.
- `mixed`: the feed-forward GEMMs (2/3 of the FLOPs) and the attention output projection in bf16
           (`Bf16Linear`: inputs, weights and bias in bf16, fp32 accumulation, the result back in fp32);
           the fused QKV projection, the attention matmuls and softmax, the residual stream and layer
           norms stay fp32. Measured on MiniLM: min cosine 0.99996 vs fp32. Needs native bf16
           (AVX512-BF16 or AMX); otherwise fp32.
- `int8`:  every linear layer of the encoder (QKV, attention output, feed-forward) int8 with SmoothQuant,
           calibrated at load time on a shipped text sample; the attention matmuls in bf16 where native
           (else fp32). Measured on MiniLM: min cosine ~0.995 vs fp32.
Heads' layers stay in the load dtype in every mode. A runner without linear slots (the transformers
fallback, GLiNER) runs fp32 whatever the mode.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Literal

import torch

from sie.models.linear import Bf16Linear, Int8Linear, Linear
from sie.models.runner import LinearSlot, PackedBatch, Runner

CpuPrecision = Literal["fp32", "mixed", "int8"]
log = logging.getLogger(__name__)


@functools.cache
def native_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (otherwise bf16 GEMMs are emulated and slower)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def apply_cpu_precision(runner: Runner, mode: CpuPrecision, calibration: Iterable[PackedBatch] = ()) -> CpuPrecision:
    """Swap the runner's linear layers for `mode`; returns the mode actually applied."""
    slots: list[LinearSlot] = runner.linear_slots()
    if mode != "fp32" and not slots:
        log.info("%s has no swappable linear layers; running fp32", type(runner).__name__)
        return "fp32"
    if mode == "fp32":
        return "fp32"
    if mode == "mixed":
        if not native_bf16():
            log.info("CPU has no native bf16; running fp32 instead of mixed precision")
            return "fp32"
        for s in slots:
            if s.role in ("ffn", "attention_out"):
                lin = getattr(s.owner, s.attr)
                setattr(s.owner, s.attr, Bf16Linear(lin.weight, lin.bias, lin.activation))
        return "mixed"
    if mode == "int8":
        absmax = _input_absmax(slots, runner.forward, calibration)
        for i, s in enumerate(slots):
            lin = getattr(s.owner, s.attr)
            setattr(s.owner, s.attr, Int8Linear(lin.weight, lin.bias, absmax.get(i), activation=lin.activation))
        if native_bf16():
            runner.attention_dtype = torch.bfloat16  # within int8's fidelity budget, ~2.5x faster matmuls
        return "int8"
    raise ValueError(f"precision: unknown CPU precision '{mode}'; valid: fp32, mixed, int8")


class _InputRecorder(Linear):
    def __init__(self, lin: Linear, sink: dict, key: int) -> None:
        super().__init__(lin.weight, lin.bias, lin.activation)
        self.sink, self.key = sink, key

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = x.detach().abs().reshape(-1, x.shape[-1]).amax(0)
        old = self.sink.get(self.key)
        self.sink[self.key] = m if old is None else torch.maximum(old, m)
        return super().__call__(x)


def _input_absmax(slots: list[LinearSlot], forward, calibration: Iterable[PackedBatch]) -> dict[int, torch.Tensor]:
    """Per-input-channel |x| max of every slot, from fp32 forward passes over the calibration batches."""
    originals = [getattr(s.owner, s.attr) for s in slots]
    stats: dict[int, torch.Tensor] = {}
    try:
        for i, s in enumerate(slots):
            setattr(s.owner, s.attr, _InputRecorder(originals[i], stats, i))
        for batch in calibration:
            forward(batch)
    finally:
        for s, lin in zip(slots, originals, strict=False):
            setattr(s.owner, s.attr, lin)
    return stats
