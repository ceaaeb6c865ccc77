"""A text's own structure, for `chunk: {by: structure}`: its blocks (headings, paragraphs, lists, tables,
code) as markdown-it-py parses them, each with the heading path it stands under, and the packing of those
blocks into chunks of at most `size` tokens.

A chunk never spans two sections (a heading starts a new chunk), never starts mid-word, and never splits a
block that fits: a table or a code block stays whole. A block larger than the size is split by sentences
(a sentence larger than the size by words), and only those pieces overlap by up to `overlap` tokens; whole
blocks need no overlap, their boundaries are the document's own. Every source reader makes Markdown-shaped
text (pipelines/documents.py), so PDF, HTML, DOCX and .md files all get the same structure; a PDF's page
breaks (`\\f`) are read as line breaks here, which keeps every offset.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")
WORD = re.compile(r"\S+")
LINE_END = re.compile(r"\n")
LINED = frozenset({"table_open", "fence", "code_block"})   # split by rows / lines, never inside one
PAGE_BREAK = "\f"


@dataclass(frozen=True, slots=True)
class Block:
    start: int
    end: int
    heading: bool
    kind: str           # markdown-it token type: paragraph_open, table_open, fence, bullet_list_open...
    section: tuple[str, ...]


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")


def blocks(text: str) -> list[Block]:
    """The top-level blocks of `text` in order, with their heading paths (a heading is in its own section)."""
    source = text.replace(PAGE_BREAK, "\n")  # same length: offsets into `source` are offsets into `text`
    line_starts = [0] + [i + 1 for i, ch in enumerate(source) if ch == "\n"]
    tokens = _markdown().parse(source)
    path: list[tuple[int, str]] = []
    out: list[Block] = []
    for i, token in enumerate(tokens):
        if token.level != 0 or token.nesting == -1 or token.map is None:
            continue
        first, last = token.map
        start = line_starts[first]
        end = line_starts[last] if last < len(line_starts) else len(source)
        while end > start and source[end - 1].isspace():
            end -= 1
        while start < end and source[start].isspace():
            start += 1
        if start == end:
            continue
        heading = token.type == "heading_open"
        if heading:
            level = int(token.tag[1])
            path = [(lv, t) for lv, t in path if lv < level]
            path.append((level, tokens[i + 1].content.strip()))
        out.append(Block(start, end, heading, token.type, tuple(t for _, t in path)))
    return out


def split_spans(text: str, start: int, end: int, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """Pieces of text[start:end] between matches of a separator pattern (kept with the piece before it, less
    its trailing whitespace), without surrounding whitespace."""
    out, at = [], start
    for m in pattern.finditer(text, start, end):
        out.append((at, m.start() + len(m.group(0).rstrip())))
        at = m.end()
    out.append((at, end))
    spans = []
    for s, e in out:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            spans.append((s, e))
    return spans


def chunk_spans(text: str, size: int, overlap: int,
                count: Callable[[list[str]], list[int]]) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, heading path) of the chunks of `text`: blocks packed up to `size` tokens (`count` gives
    the token counts of texts)."""
    found = blocks(text)
    counts = count([text[b.start:b.end] for b in found])
    out: list[tuple[int, int, tuple[str, ...]]] = []
    section: list[tuple[int, int, int, int]] = []   # (start, end, tokens, piece-of-block id or -1)
    current: tuple[str, ...] = ()
    for number, (block, n) in enumerate(zip(found, counts, strict=True)):
        if block.heading and section:
            out += [(s, e, current) for s, e in _pack(section, size, overlap)]
            section = []
        current = block.section
        if n <= size:
            section.append((block.start, block.end, n, -1))
        else:
            section += [(s, e, k, number) for s, e, k in _pieces(text, block, size, count)]
    if section:
        out += [(s, e, current) for s, e in _pack(section, size, overlap)]
    return out


def _pieces(text: str, block: Block, size: int,
            count: Callable[[list[str]], list[int]]) -> list[tuple[int, int, int]]:
    """A block too large for one chunk as sentences (a table or code as rows / lines), and a sentence too
    large as words."""
    sentences = split_spans(text, block.start, block.end, LINE_END if block.kind in LINED else SENTENCE_END)
    counts = count([text[s:e] for s, e in sentences])
    out = []
    for (s, e), n in zip(sentences, counts, strict=True):
        if n <= size:
            out.append((s, e, n))
            continue
        words = [(m.start(), m.end()) for m in WORD.finditer(text, s, e)]
        out += [(ws, we, k) for (ws, we), k in zip(words, count([text[a:b] for a, b in words]), strict=True)]
    return out


def _pack(units: list[tuple[int, int, int, int]], size: int, overlap: int) -> list[tuple[int, int]]:
    """Greedy packing of units up to `size` tokens; a chunk that continues a split block starts with the
    block's last pieces of the chunk before, up to `overlap` tokens."""
    out: list[tuple[int, int]] = []
    chunk: list[tuple[int, int, int, int]] = []
    total = 0
    for unit in units:
        if chunk and total + unit[2] > size:
            out.append((chunk[0][0], chunk[-1][1]))
            carried: list[tuple[int, int, int, int]] = []
            if unit[3] != -1 and overlap:
                kept = 0
                for prev in reversed(chunk):
                    if prev[3] != unit[3] or kept + prev[2] > overlap or kept + prev[2] + unit[2] > size:
                        break
                    carried.insert(0, prev)
                    kept += prev[2]
            chunk, total = carried, sum(u[2] for u in carried)
        chunk.append(unit)
        total += unit[2]
    if chunk:
        out.append((chunk[0][0], chunk[-1][1]))
    return out


def page_starts(text: str) -> list[int]:
    """Where each page begins in a text whose pages are joined by form feeds."""
    return [0] + [i + 1 for i, ch in enumerate(text) if ch == PAGE_BREAK]


def page_metadata(starts: list[int], start: int, end: int) -> dict[str, Any]:
    """`page` (1-based, first), `page_last` and `page_chars` (offsets into the first and last page's text)
    of text[start:end], given the text's `page_starts`."""
    first = bisect.bisect_right(starts, start)
    last = bisect.bisect_right(starts, max(start, end - 1))
    return {"page": first, "page_last": last, "page_chars": [start - starts[first - 1], end - starts[last - 1]]}
