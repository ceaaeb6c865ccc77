"""A model ready to run: card + runner + heads + tokenizer on one device (`LoadedModel`), and how one is
loaded from its card (`load_model`) or sized before loading (`estimate_footprint`). The forward passes
over its batches are sie.runtime.compute's."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

# transformers resolves its names lazily, and not thread-safely: the pool's two load threads, each the
# first to touch it, fail with "cannot import name 'AutoConfig' from 'transformers'" (seen when the first
# requests for two models arrive together). Resolving the entry points the loads use, once, at import
# time, prevents it.
from transformers import AutoConfig, AutoModel, AutoTokenizer  # noqa: F401

from sie.catalog.card import ModelCard
from sie.errors import ModelLoadFailed, SieError
from sie.models import runner_class
from sie.models.heads import ModelHeads
from sie.models.placement import move_tensors, resident_bytes
from sie.models.precision import apply_cpu_precision
from sie.models.runner import PackedBatch, Runner
from sie.runtime.kinds import load_heads
from sie.runtime.memory import activation_reserve, weights_bytes
from sie.runtime.tokenizer import TextTokenizer, Tokenized
from sie.runtime.weights import resolve_weights

log = logging.getLogger(__name__)
CALIBRATION_TEXT = Path(__file__).parent.parent / "models" / "calibration.txt"
_CUDA_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class LoadedModel:
    card: ModelCard
    runner: Runner
    tokenizer: TextTokenizer
    device: torch.device
    precision: str
    token_budget: int
    load_seconds: float
    reserve_bytes: int = 0
    heads: ModelHeads = field(default_factory=ModelHeads)   # sparse / multivector / score / extract heads

    @functools.cached_property
    def nbytes(self) -> int:
        """Bytes of every tensor the runner and the heads hold, each storage once. Walked once, on first use:
        loading (precision included) is over by then, and moving between tiers keeps every tensor's size."""
        return resident_bytes(self.runner, self.heads)

    @property
    def footprint(self) -> int:
        """Bytes this model needs on its device: weights plus the activation reserve of a full batch."""
        return self.nbytes + self.reserve_bytes

    def to(self, device: torch.device, *, pin: bool = False) -> None:
        """Move the weights (device ↔ host tier); a no-op when already there."""
        if device != self.device:
            move_tensors(self.runner, device, pin=pin)   # updates runner.device too
            move_tensors(self.heads, device, pin=pin)
            self.device = device

    def batches(self, seqs: list[Tokenized]) -> list[list[int]]:
        """Indices of `seqs`, longest first, cut into forward passes of at most `token_budget` tokens."""
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i].ids))
        out: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for i in order:
            n = len(seqs[i].ids)
            if current and tokens + n > self.token_budget:
                out.append(current)
                current, tokens = [], 0
            current.append(i)
            tokens += n
        if current:
            out.append(current)
        return out

    def pack(self, seqs: list[Tokenized], idx: list[int]) -> PackedBatch:
        """The sequences `idx` (longest first) as one packed batch on this model's device."""
        keys = [seqs[i].key_length or len(seqs[i].ids) for i in idx]
        return PackedBatch.from_sequences([seqs[i].ids for i in idx], self.device,
                                          [seqs[i].type_ids for i in idx], keys)


def load_model(card: ModelCard, device: torch.device, *, allow_downloads: bool = False,
               cpu_precision: str | None = None, cpu_token_budget: int = 2048) -> LoadedModel:
    """Card → LoadedModel. Raises WeightsNotFound / ModelLoadFailed with the reason."""
    start = time.perf_counter()
    folder = resolve_weights(card.source, allow_downloads=allow_downloads)
    dtype = torch.float32 if device.type == "cpu" else _CUDA_DTYPES[card.precision.cuda]
    try:
        runner: Runner = runner_class(card.architecture).load(folder, device=device, dtype=dtype)
        own = runner.backend_tokenizer()  # GLiNER: the backbone's tokenizer plus its prompt tokens
        tokenizer = TextTokenizer.load(folder, card.max_tokens) if own is None else TextTokenizer(own, card.max_tokens)
        heads = load_heads(card, folder, runner, tokenizer.backend, device=device, dtype=dtype)
    except SieError:
        raise
    except Exception as e:  # corrupt files, shape mismatches: the model is unusable, the server is not
        raise ModelLoadFailed(f"{card.name}: loading {folder} failed: {type(e).__name__}: {e}") from None
    if runner.max_positions is not None and card.max_tokens > runner.max_positions:
        raise ModelLoadFailed(f"{card.name}: max_tokens {card.max_tokens} exceeds the model's "
                              f"{runner.max_positions} positions", field="max_tokens")
    precision = card.precision.cuda
    budget = card.token_budget
    if device.type == "cpu":
        budget = min(budget, max(cpu_token_budget, card.max_tokens))
        mode = cpu_precision or card.precision.cpu
        calibration = []
        if mode == "int8":
            lines = [t for t in CALIBRATION_TEXT.read_text().splitlines() if t.strip()]
            seqs = tokenizer.encode(lines)
            loaded = LoadedModel(card, runner, tokenizer, device, "fp32", budget, 0.0)
            calibration = [loaded.pack(seqs, idx) for idx in loaded.batches(seqs)]
        precision = apply_cpu_precision(runner, mode, calibration)
        if precision == "int8":  # compile the fused int8 kernels now, not inside the first request's batch
            runner.forward(calibration[-1])
    seconds = time.perf_counter() - start
    log.info("loaded %s from %s on %s (%s) in %.2fs", card.name, folder, device, precision, seconds)
    return LoadedModel(card, runner, tokenizer, device, precision, budget, seconds,
                       _reserve(runner.config, card, budget, dtype), heads)


def estimate_footprint(card: ModelCard, device: torch.device, *, allow_downloads: bool = False,
                       cpu_token_budget: int = 2048) -> int:
    """Upper bound of a model's footprint before loading it (weights in the compute dtype + reserve)."""
    folder = resolve_weights(card.source, allow_downloads=allow_downloads)
    dtype = torch.float32 if device.type == "cpu" else _CUDA_DTYPES[card.precision.cuda]
    budget = card.token_budget if device.type != "cpu" else min(card.token_budget, max(cpu_token_budget,
                                                                                        card.max_tokens))
    try:
        if (folder / "gliner_config.json").exists() and not (folder / "config.json").exists():
            from sie.models.gliner import estimate

            config, weights = estimate(folder, dtype)
        else:
            config = AutoConfig.from_pretrained(folder)
            weights = weights_bytes(folder, dtype)
    except Exception as e:  # unreadable config or safetensors header: the model is unusable
        raise ModelLoadFailed(f"{card.name}: loading {folder} failed: {type(e).__name__}: {e}") from None
    return weights + _reserve(config, card, budget, dtype)


def _reserve(config, card: ModelCard, budget: int, dtype: torch.dtype) -> int:
    if config is None:
        return 0
    hidden = getattr(config, "hidden_size", 0) or 0
    return activation_reserve(budget, hidden, getattr(config, "intermediate_size", 4 * hidden) or 4 * hidden,
                              getattr(config, "num_attention_heads", 1) or 1, card.max_tokens,
                              torch.tensor([], dtype=dtype).element_size())
