"""`chunk: {by: structure}`: chunks that follow the document's headings and blocks, with exact expected
chunks; tables and code kept whole, long blocks split by sentences with overlap, the heading path in
`section`, pages and offsets for PDFs, and `prefix_section` changing only what is embedded."""

from __future__ import annotations

import pytest

from pipelines.steps.base import Chunk, StepContext
from pipelines.steps.chunk import ChunkConfig, ChunkStep
from pipelines.tokenizers import Tokenizers

HANDBOOK = """# Handbook

Welcome to the company. Read this first.

## Vacation

Everyone gets 25 days a year.

| Years | Days |
|---|---|
| 0-5 | 25 |
| 5+ | 30 |

### Carry-over

Five days carry over. They expire in March. Ask HR about exceptions. Managers approve longer breaks. \
Unused days beyond five are lost.

```
vacation --days 5
```
"""


@pytest.fixture(scope="module")
def ctx(engine):
    return StepContext(engine, Tokenizers(engine), "t")


def chunks(ctx, text: str, metadata=None, **config) -> list[Chunk]:
    step = ChunkStep(ChunkConfig(by="structure", tokenizer="all-MiniLM-L6-v2", **config), ctx)
    return step.apply([Chunk("doc", 0, text, 0, len(text), dict(metadata or {}))])


def test_structure_chunks_follow_headings_and_keep_tables_whole(ctx):
    out = chunks(ctx, HANDBOOK, size=40, overlap=8)
    assert [(c.text, c.metadata["section"]) for c in out] == [
        ("# Handbook\n\nWelcome to the company. Read this first.", ["Handbook"]),
        ("## Vacation\n\nEveryone gets 25 days a year.\n\n| Years | Days |\n|---|---|\n| 0-5 | 25 |\n| 5+ | 30 |",
         ["Handbook", "Vacation"]),
        ("### Carry-over\n\nFive days carry over. They expire in March. Ask HR about exceptions. Managers approve "
         "longer breaks. Unused days beyond five are lost.", ["Handbook", "Vacation", "Carry-over"]),
        ("```\nvacation --days 5\n```", ["Handbook", "Vacation", "Carry-over"]),   # code: its own block, whole
    ]
    assert [c.index for c in out] == [0, 1, 2, 3] and all(c.embed_text is None for c in out)
    for c in out:
        assert HANDBOOK[c.start:c.end] == c.text


def test_a_block_larger_than_the_size_is_split_by_sentences_with_overlap(ctx):
    out = chunks(ctx, HANDBOOK, size=12, overlap=6)
    assert [c.text for c in out if c.metadata["section"][-1] == "Carry-over"] == [
        "### Carry-over\n\nFive days carry over.",    # the heading packs with the first sentence
        "Five days carry over. They expire in March.",  # one sentence (<= 6 tokens) of overlap each
        "They expire in March. Ask HR about exceptions.",
        "Ask HR about exceptions. Managers approve longer breaks.",
        "Managers approve longer breaks. Unused days beyond five are lost.",
        "```\nvacation --days 5\n```"]
    # A table larger than the size is split between rows, never inside one.
    assert [c.text for c in out if c.metadata["section"][-1] == "Vacation"] == [
        "## Vacation\n\nEveryone gets 25 days a year.", "| Years | Days |", "|---|---|", "| 0-5 | 25 |", "| 5+ | 30 |"]
    assert all(HANDBOOK[c.start:c.end] == c.text and not c.text[0].isspace() for c in out)


def test_pdf_chunks_carry_pages_and_offsets_into_the_page(ctx):
    text = "Intro line one.\n\nIntro line two.\fSecond page starts. And goes on.\fThird."
    out = chunks(ctx, text, {"pages": 3}, size=12, overlap=0)
    assert [(c.text, c.metadata) for c in out] == [
        ("Intro line one.\n\nIntro line two.\fSecond page starts.",
         {"pages": 3, "section": [], "page": 1, "page_last": 2, "page_chars": [0, 19]}),
        ("And goes on.\fThird.", {"pages": 3, "section": [], "page": 2, "page_last": 3, "page_chars": [20, 6]})]
    # Pages come with every `by`, not only structure.
    (whole,) = ChunkStep(ChunkConfig(by="paragraphs", size=5), ctx).apply([Chunk("d", 0, text, 0, len(text),
                                                                                  {"pages": 3})])
    assert (whole.metadata["page"], whole.metadata["page_last"], "section" in whole.metadata) == (1, 3, False)


def test_prefix_section_changes_what_is_embedded_not_what_is_stored(ctx):
    out = chunks(ctx, HANDBOOK, size=40, prefix_section=True)
    assert out[1].text.startswith("## Vacation\n\nEveryone")
    assert out[1].embed_text == "Handbook > Vacation\n\n" + out[1].text
    with pytest.raises(ValueError, match="prefix_section needs by: structure"):
        ChunkConfig(by="tokens", prefix_section=True)


def test_text_without_headings_has_an_empty_section(ctx):
    out = chunks(ctx, "One paragraph.\n\nAnother one.", size=3)
    assert [(c.text, c.metadata["section"], c.start) for c in out] == [("One paragraph.", [], 0),
                                                                        ("Another one.", [], 16)]
