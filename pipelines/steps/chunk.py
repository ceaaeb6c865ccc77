"""`chunk`: split each piece of text into windows of tokens (of a named model's tokenizer), sentences,
paragraphs or characters, with overlap. Every chunk keeps its index in the source and the character
offsets of its text in the source's text, so a hit can be traced back to where it was read.

    - chunk: {by: tokens, size: 256, overlap: 32, tokenizer: all-MiniLM-L6-v2}
    - chunk: {by: sentences, size: 5, overlap: 1}
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from pipelines.steps.base import Chunk, IngestStep, StepConfig
from pipelines.steps.rules import Before, Once, uses_model

SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


class ChunkConfig(StepConfig):
    by: Literal["tokens", "sentences", "paragraphs", "characters"] = Field(
        "tokens", description="The unit `size` and `overlap` count.")
    size: int = Field(256, gt=0, le=100_000, description="Units per chunk.")
    overlap: int = Field(0, ge=0, description="Units shared by consecutive chunks (less than size).")
    tokenizer: str | None = Field(None, description="by: tokens — the model whose tokenizer counts "
                                                    "(default: the first encode step's model).")
    min_chars: int = Field(1, ge=0, description="Chunks with fewer non-space characters are dropped.")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkConfig:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be less than size ({self.size})")
        return self

    def models(self) -> list[tuple[str, str, str]]:
        return [("tokenizer", self.tokenizer, "tokenizer")] if self.by == "tokens" and self.tokenizer else []

    def tokenizer_default_key(self) -> str | None:
        return "tokenizer" if self.by == "tokens" and self.tokenizer is None else None


class ChunkStep(IngestStep):
    name = "chunk"
    config_class = ChunkConfig
    rules = (Once("only one chunk step per pipeline (the first is steps[{first}])"),
             Before(uses_model, "chunk must come before steps[{other}].{other_name}: what a model step adds to a "
                                "text would be lost when it is split"))

    def apply(self, chunks: list[Chunk]) -> list[Chunk]:
        out: list[Chunk] = []
        for parent in chunks:
            for start, end in self.spans(parent.text):
                piece = parent.text[start:end]
                if len(piece.strip()) < max(1, self.config.min_chars):
                    continue
                out.append(Chunk(parent.source_id, 0, piece, parent.start + start, parent.start + end,
                                 dict(parent.metadata)))
        # Indices number the chunks of each source in order (they are part of the record ids).
        counters: dict[str, int] = {}
        for chunk in out:
            chunk.index = counters.get(chunk.source_id, 0)
            counters[chunk.source_id] = chunk.index + 1
        return out

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the chunks of `text`."""
        c = self.config
        if not text:
            return []
        if c.by == "characters":
            units = [(i, i + 1) for i in range(len(text))]
        elif c.by == "tokens":
            assert c.tokenizer is not None  # filled in from the encode step by the spec
            units = [(s, e) for s, e in self.ctx.tokenizer(c.tokenizer).encode(text).offsets if e > s]
        else:
            units = _split(text, SENTENCE_END if c.by == "sentences" else PARAGRAPH_BREAK)
        return windows(units, c.size, c.overlap)


def _split(text: str, boundary: re.Pattern[str]) -> list[tuple[int, int]]:
    """Spans of the text between boundaries, without the whitespace around them."""
    spans, start = [], 0
    for m in boundary.finditer(text):
        spans.append((start, m.start() + len(m.group(0).rstrip())))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        piece = text[s:e]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            out.append((s + lead, s + lead + len(stripped)))
    return out


def windows(units: list[tuple[int, int]], size: int, overlap: int) -> list[tuple[int, int]]:
    """Spans covering `size` consecutive units, each window starting `size - overlap` units later."""
    if not units:
        return []
    out, step = [], size - overlap
    for first in range(0, len(units), step):
        last = min(first + size, len(units)) - 1
        out.append((units[first][0], units[last][1]))
        if last == len(units) - 1:
            break
    return out
