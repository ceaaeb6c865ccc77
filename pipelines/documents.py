"""Documents in: PDF, HTML and DOCX files read into text and metadata by well-kept parsers (the
`documents` extra: pypdfium2, trafilatura, python-docx), never by hand.

Every format comes out as Markdown-shaped text, so one structure chunker (pipelines/structure.py) reads
them all: headings as `#` lines, tables as Markdown tables. A PDF's pages are joined by a form feed
(`\\f`, as pdftotext does), so page numbers and offsets into each page follow from the text alone and
survive the dead-letter file. A PDF's text layer has lines but no headings: its outline (bookmarks) names
them, and those lines get their `#` marks, so offsets into a page are offsets into its text so marked. The
format is decided by the bytes as well as the suffix: a file whose bytes are not what its suffix says is
refused with the reason (`DocumentRefused`), as is a PDF without a text layer, an encrypted one and one the
parser cannot read.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any

from pipelines.structure import PAGE_BREAK

PDF_SUFFIXES = frozenset({".pdf"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
DOCX_SUFFIXES = frozenset({".docx"})
DOCUMENT_SUFFIXES = PDF_SUFFIXES | HTML_SUFFIXES | DOCX_SUFFIXES


class DocumentRefused(ValueError):
    """The file cannot be indexed as what it claims to be; the message is the reason."""


@dataclass(slots=True)
class Parsed:
    text: str
    metadata: dict[str, Any]


def universal_newlines(text: str) -> str:
    """\r\n and \r as \n (as read_text does), so offsets do not depend on where a file was written."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def sniff(data: bytes) -> str | None:
    """The format the bytes are, whatever the name says: pdf, docx, zip, html or None (text or unknown)."""
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            return "zip"
        return "docx" if "word/document.xml" in names else "zip"
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")) or b"<html" in head.lower():
        return "html"
    return None


def text_problem(data: bytes, suffix: str) -> str | None:
    """Why bytes named as a text file (.txt/.md/.rst) are not text, when they are another format."""
    kind = sniff(data)
    if kind in ("pdf", "docx", "zip"):
        return f"the bytes are a {kind.upper()} file, not text as its suffix {suffix} says"
    return None


def parse(data: bytes, suffix: str, name: str) -> Parsed:
    """The document in `data` (named `name`, with `suffix`), or DocumentRefused with the reason."""
    expected = "pdf" if suffix in PDF_SUFFIXES else "docx" if suffix in DOCX_SUFFIXES else "html"
    kind = sniff(data)
    if kind != expected and not (expected == "html" and kind is None and b"<" in data[:4096]):
        what = f"a {kind.upper()} file" if kind else "not a recognisable document"
        raise DocumentRefused(f"the bytes are {what}, not {expected.upper()} as its suffix {suffix} says")
    if expected == "pdf":
        return _pdf(data)
    if expected == "docx":
        return _docx(data)
    return _html(data, name)


def _pdf(data: bytes) -> Parsed:
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        # pdfium says "Failed to load document (PDFium: Incorrect password error)." and the like.
        raise DocumentRefused(f"not a readable PDF: {str(e).rstrip('.')}") from None
    try:
        pages = []
        for i in range(len(doc)):
            page = doc[i]
            textpage = page.get_textpage()
            # pdfium ends lines with \r\n; one newline keeps offsets the same on every platform.
            pages.append(universal_newlines(textpage.get_text_bounded()).replace(PAGE_BREAK, "\n"))
            textpage.close()
            page.close()
        info = doc.get_metadata_dict(skip_empty=True)
        pages = _outline_headings(pages, _outline(doc))
    finally:
        doc.close()
    if not any(p.strip() for p in pages):
        n = len(pages)
        raise DocumentRefused(f"no text layer: OCR is not enabled ({n} page{'' if n == 1 else 's'} without text)")
    metadata: dict[str, Any] = {"format": "pdf", "pages": len(pages)}
    for key in ("Title", "Author"):
        if info.get(key, "").strip():
            metadata[key.lower()] = info[key].strip()
    return Parsed(PAGE_BREAK.join(pages), metadata)


def _outline(doc: Any) -> list[tuple[int, int, str]]:
    """(page index, level from 1, title) of the PDF's bookmarks, in document order."""
    out = []
    for mark in doc.get_toc():
        dest = mark.get_dest()
        index = dest.get_index() if dest is not None else None
        if index is not None and 0 <= index < len(doc) and mark.get_title().strip():
            out.append((index, min(mark.level + 1, 6), " ".join(mark.get_title().split())))
    return out


def _outline_headings(pages: list[str], outline: list[tuple[int, int, str]]) -> list[str]:
    """The text layer has no headings, only lines; a PDF's outline (its bookmarks) names them. Each bookmark's
    title, found as a whole line on its page (after the one before it), becomes a Markdown heading of its
    level, so `by: structure` gets the document's sections. A title that is not one line of its page (wrapped,
    or drawn as an image) is left as text."""
    marked = [p.split("\n") for p in pages]
    after = [0] * len(pages)    # the line after the last heading found on each page
    for index, level, title in outline:
        lines = marked[index]
        for i in range(after[index], len(lines)):
            if " ".join(lines[i].split()) == title:
                lines[i] = "#" * level + " " + lines[i].strip()
                after[index] = i + 1
                break
    return ["\n".join(lines) for lines in marked]


def _html(data: bytes, name: str) -> Parsed:
    import lxml.html
    import trafilatura

    try:
        tree = lxml.html.fromstring(data)
    except (ValueError, lxml.etree.ParserError) as e:
        raise DocumentRefused(f"not readable HTML: {e}") from None
    # Main content only (no navigation, footers, cookie banners), headings and tables kept, as Markdown.
    text = trafilatura.extract(tree, output_format="markdown", include_tables=True, include_formatting=True,
                               include_links=False, include_images=False, include_comments=False,
                               favor_recall=True)
    if not text or not text.strip():
        raise DocumentRefused("no main content found in the HTML")
    canonical = tree.xpath("//link[@rel='canonical']/@href")
    titles = tree.xpath("//title/text()") or tree.xpath("//h1//text()")
    metadata: dict[str, Any] = {"format": "html", "url": canonical[0].strip() if canonical else name}
    if titles and titles[0].strip():
        metadata["title"] = " ".join(titles[0].split())
    return Parsed(text, metadata)


def _docx(data: bytes) -> Parsed:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise DocumentRefused(f"not a readable DOCX: {e}") from None
    blocks = []
    for item in document.iter_inner_content():  # paragraphs and tables in document order
        if isinstance(item, Table):
            blocks.append(markdown_table([[cell.text for cell in row.cells] for row in item.rows]))
            continue
        text = item.text.strip()
        if not text:
            continue
        level = _heading_level(item.style.name if item.style is not None else "")
        blocks.append(f"{'#' * level} {text}" if level else text)
    if not blocks:
        raise DocumentRefused("no text in the DOCX")
    props = document.core_properties
    metadata: dict[str, Any] = {"format": "docx"}
    if props.title:
        metadata["title"] = props.title
    if props.author:
        metadata["author"] = props.author
    return Parsed("\n\n".join(blocks) + "\n", metadata)


def _heading_level(style: str) -> int:
    """'Heading 2' -> 2, 'Title' -> 1; 0 for body styles."""
    if style == "Title":
        return 1
    if style.startswith("Heading "):
        level = style.removeprefix("Heading ").strip()
        return min(int(level), 6) if level.isdigit() else 0
    return 0


def markdown_table(rows: list[list[str]]) -> str:
    """Rows of cells as a Markdown table, the first row as its header; a cell's own lines become spaces."""
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    cells = [[" ".join(c.split()).replace("|", "\\|") for c in r] + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join(["---"] * width) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(lines)
