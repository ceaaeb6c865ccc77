"""`chunk`: split each piece of text into windows of tokens (of a named model's tokenizer), sentences,
paragraphs or characters, with overlap. Every chunk keeps its index in the source and the character
offsets of its text in the source's text, so a hit can be traced back to where it was read.

    - chunk: {by: tokens, size: 256, overlap: 32, tokenizer: all-MiniLM-L6-v2}
    - chunk: {by: sentences, size: 5, overlap: 1}
    - chunk: {by: structure, size: 256, overlap: 32, prefix_section: true}

`by: structure` (pipelines/structure.py) splits at headings, then blocks, then sentences, packs them up to
`size` tokens and puts the heading path in each chunk's `section` metadata; sources with pages (PDF) give
every chunk, whatever `by`, its `page`, `page_last` and `page_chars`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from pipelines.steps.base import Chunk, IngestStep, StepConfig
from pipelines.steps.rules import Before, Once, uses_model
from pipelines.structure import PAGE_BREAK, SENTENCE_END, chunk_spans, page_metadata, page_starts, split_spans

PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


class ChunkConfig(StepConfig):
    by: Literal["tokens", "structure", "sentences", "paragraphs", "characters"] = Field(
        "tokens", description="The unit `size` and `overlap` count (structure: tokens, packed in headings "
                              "and blocks).")
    size: int = Field(256, gt=0, le=100_000, description="Units per chunk.")
    overlap: int = Field(0, ge=0, description="Units shared by consecutive chunks (less than size).")
    tokenizer: str | None = Field(None, description="by: tokens — the model whose tokenizer counts "
                                                    "(default: the first encode step's model).")
    min_chars: int = Field(1, ge=0, description="Chunks with fewer non-space characters are dropped.")
    prefix_section: bool = Field(False, description="by: structure — embed each chunk with its heading path "
                                                    "before its text (the stored text stays as read).")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkConfig:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be less than size ({self.size})")
        if self.prefix_section and self.by != "structure":
            raise ValueError(f"prefix_section needs by: structure (the heading path), not by: {self.by}")
        return self

    @property
    def counts_tokens(self) -> bool:
        return self.by in ("tokens", "structure")

    def models(self) -> list[tuple[str, str, str]]:
        return [("tokenizer", self.tokenizer, "tokenizer")] if self.counts_tokens and self.tokenizer else []

    def tokenizer_default_key(self) -> str | None:
        return "tokenizer" if self.counts_tokens and self.tokenizer is None else None

    def metadata_outputs(self) -> list[str]:
        return (["section"] if self.by == "structure" else []) + ["page", "page_last", "page_chars"]


class ChunkStep(IngestStep):
    name = "chunk"
    config_class = ChunkConfig
    rules = (Once("only one chunk step per pipeline (the first is steps[{first}])"),
             Before(uses_model, "chunk must come before steps[{other}].{other_name}: what a model step adds to a "
                                "text would be lost when it is split"))

    def apply(self, chunks: list[Chunk]) -> list[Chunk]:
        out: list[Chunk] = []
        for parent in chunks:
            starts = page_starts(parent.text) if "pages" in parent.metadata and PAGE_BREAK in parent.text else None
            for start, end, section in self.sections(parent.text):
                piece = parent.text[start:end]
                if len(piece.strip()) < max(1, self.config.min_chars):
                    continue
                metadata = dict(parent.metadata)
                if section is not None:
                    metadata["section"] = list(section)
                if starts is not None:
                    metadata.update(page_metadata(starts, start, end))
                chunk = Chunk(parent.source_id, 0, piece, parent.start + start, parent.start + end, metadata)
                if self.config.prefix_section and section:
                    chunk.embed_text = " > ".join(section) + "\n\n" + piece
                out.append(chunk)
        # Indices number the chunks of each source in order (they are part of the record ids).
        counters: dict[str, int] = {}
        for chunk in out:
            chunk.index = counters.get(chunk.source_id, 0)
            counters[chunk.source_id] = chunk.index + 1
        return out

    def sections(self, text: str) -> list[tuple[int, int, tuple[str, ...] | None]]:
        """Spans of the chunks of `text` with their heading paths (None where `by` does not read them)."""
        c = self.config
        if c.by == "structure":
            assert c.tokenizer is not None  # filled in from the encode step by the spec
            return chunk_spans(text, c.size, c.overlap, self.ctx.tokenizer(c.tokenizer).count) if text else []
        return [(s, e, None) for s, e in self.spans(text)]

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
            units = split_spans(text, 0, len(text), SENTENCE_END if c.by == "sentences" else PARAGRAPH_BREAK)
        return windows(units, c.size, c.overlap)


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
