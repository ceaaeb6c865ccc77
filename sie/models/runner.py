"""The runner contract: what every architecture family implements, and all that the rest of sie asks of it.

A runner is loaded once from a weights folder and then does pure tensor work on a `PackedBatch`:
token ids of all sequences concatenated, plus cumulative lengths. No padding reaches the linear
layers, layer norms or embeddings; only attention sees sequence boundaries.

`Runner` lists every member its callers use (runtime/loaded_model.py, models/heads.py,
models/precision.py, runtime/compute.py): what a family may leave out has a declared default here,
so no caller probes a runner with `hasattr`. Its memory footprint is not a member: sie counts it
once, by walking the tensors it holds (`sie.models.placement.resident_bytes`).

A family's forward pass calls `between_layers()` before each layer and between each layer's attention and
feed-forward halves (sub-layers: a query then waits half a layer of a long batch, not a whole one): where the
batcher computes, more urgent work may run there first (a batch on the device is otherwise not
interruptible); elsewhere it does nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Self

import torch

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PretrainedConfig

_thread = threading.local()


def between_layers() -> None:
    """Called by forward passes between sub-layers: runs the hook installed on this thread, if any."""
    hook = getattr(_thread, "between_layers", None)
    if hook is not None:
        hook()


def install_between_layers(hook: Callable[[], None] | None) -> None:
    """The hook `between_layers` runs on the calling thread (the batcher's compute thread installs one)."""
    _thread.between_layers = hook


SLOT_ROLE = "sie.precision_role"  # dataclass field metadata key: see `swappable`


@dataclass(frozen=True)
class PackedBatch:
    """Sequences concatenated along one axis, sorted longest first.

    `input_ids[cu_seqlens[i]:cu_seqlens[i+1]]` is sequence i. Sorting longest-first lets attention
    group sequences of similar length without scattering (see `sie.models.attention`).
    """

    input_ids: torch.Tensor        # [T] int64
    cu_seqlens: torch.Tensor       # [B+1] int32, on the runner's device
    lengths: tuple[int, ...]       # host copy of the B lengths (non-increasing)
    token_type_ids: torch.Tensor | None = None  # [T] int64; None = all zeros
    # Keys visible to every query of sequence i: its first key_lengths[i] tokens (None = all of them).
    # ColBERT queries need this: their [MASK] padding computes states but is never attended to.
    key_lengths: tuple[int, ...] | None = None

    @property
    def num_seqs(self) -> int:
        return len(self.lengths)

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def max_seqlen(self) -> int:
        return self.lengths[0] if self.lengths else 0

    def positions(self, offset: int = 0) -> torch.Tensor:
        """Position of each token inside its own sequence (plus `offset`, e.g. RoBERTa's padding_idx+1)."""
        starts = torch.repeat_interleave(self.cu_seqlens[:-1].long(),
                                         torch.tensor(self.lengths, device=self.cu_seqlens.device))
        return torch.arange(self.num_tokens, device=starts.device) - starts + offset

    @classmethod
    def from_sequences(cls, seqs: list[list[int]], device: torch.device | str = "cpu",
                       type_ids: list[list[int]] | None = None,
                       key_lengths: list[int] | None = None) -> PackedBatch:
        """Pack token-id lists that are already sorted longest first."""
        lengths = tuple(len(s) for s in seqs)
        if any(a < b for a, b in itertools.pairwise(lengths)):
            raise ValueError("PackedBatch.from_sequences needs sequences sorted longest first")
        if not lengths or min(lengths) == 0:
            raise ValueError("PackedBatch needs at least one non-empty sequence")
        flat = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
        cu = torch.zeros(len(seqs) + 1, dtype=torch.int32)
        cu[1:] = torch.cumsum(torch.tensor(lengths), 0)
        tt = None
        if type_ids is not None and any(any(t) for t in type_ids):
            tt = torch.tensor([t for s in type_ids for t in s], dtype=torch.long).to(device)
        keys = None
        if key_lengths is not None and any(k != n for k, n in zip(key_lengths, lengths, strict=True)):
            if any(not 0 < k <= n for k, n in zip(key_lengths, lengths, strict=True)):
                raise ValueError("PackedBatch key_lengths must be in 1..length of their sequence")
            keys = tuple(key_lengths)
        return cls(flat.to(device), cu.to(device), lengths, tt, keys)


class LinearSlot(NamedTuple):
    """Where a runner keeps one linear layer: `getattr(owner, attr)`. role: 'attention' (the fused QKV
    projection), 'attention_out' (the attention output projection) or 'ffn' (feed-forward layers)."""

    owner: object
    attr: str
    role: str


def swappable(role: str) -> dict[str, str]:
    """Field metadata marking a layer dataclass field that holds a `Linear` the CPU precision modes may
    swap (see `LinearSlot`): `qkv: Linear = field(metadata=swappable("attention"))`."""
    return {SLOT_ROLE: role}


class Runner(ABC):
    """One architecture family's forward pass: `load`, then `forward` on packed batches.

    hidden_size:     width of the token states `forward` returns.
    device, dtype:   where its tensors live and the compute dtype they were loaded in
                     (sie.models.placement moves the tensors and updates `device`).
    config:          the transformers config (model_type, special ids, sizes) the heads and the memory
                     reserve read.
    max_positions:   the longest sequence its position table covers, checked against the card's
                     max_tokens at load; None: not known (the transformers fallback, GLiNER), the card
                     is trusted.
    attention_dtype: dtype of the attention matmuls, None: `dtype`. Set by sie.models.precision; only
                     runners that run their own attention read it.
    layers:          per-layer dataclasses; their `swappable` fields are the runner's `linear_slots`.
    Members only one family has (GlinerRunner's `gliner` settings and `class_token_id`) are not part of
    the contract: the code of that family's model kind uses them on the concrete class.
    """

    hidden_size: int
    device: torch.device
    dtype: torch.dtype
    config: PretrainedConfig
    max_positions: int | None = None
    attention_dtype: torch.dtype | None = None
    layers: Sequence[object] = ()

    @classmethod
    @abstractmethod
    def load(cls, path: Path, *, device: torch.device, dtype: torch.dtype) -> Self:
        """The runner for the checkpoint in `path`, its tensors on `device` in `dtype`."""

    @abstractmethod
    def forward(self, batch: PackedBatch) -> torch.Tensor:
        """Token states for every packed token: [T, hidden_size]."""

    def linear_slots(self) -> list[LinearSlot]:
        """The linear layers CPU precision modes may swap, in layer order: every `swappable` field of every
        entry of `layers`. Runners whose layers run elsewhere (transformers modules) have none."""
        return [LinearSlot(layer, f.name, f.metadata[SLOT_ROLE]) for layer in self.layers
                for f in dataclasses.fields(layer) if SLOT_ROLE in f.metadata]

    def backend_tokenizer(self) -> Tokenizer | None:
        """The tokenizer this runner needs when it is not the weights folder's own (GLiNER adds its prompt
        tokens); None: the folder's."""
        return None

    def take_head_tensors(self) -> dict[str, torch.Tensor] | None:
        """Head tensors the runner already read from the checkpoint, handed over once (so the head does
        not read the file again); None: the head reads its own."""
        return None
