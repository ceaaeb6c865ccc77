"""Render the handbook's Markdown pages (examples/data/handbook) into real documents, with the libraries
that write them: PDF with fpdf2 (headings in bold and in the PDF's outline, each chapter on a new page),
DOCX with python-docx (Heading styles, List Bullet), HTML with markdown-it-py inside a page with navigation
and a footer (boilerplate the reader must drop). Nothing binary is committed: the documents are made here.

    python examples/pdf-to-qdrant/make_pdfs.py            # the example's three PDFs, in .out/pdfs/

bench/chunking.py renders every page in every format with the same functions.
"""

from __future__ import annotations

import argparse
import html as html_escape
import io
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
HANDBOOK = HERE.parent / "data" / "handbook"
#: The example's PDFs: a handful of books, each chapter one handbook page.
BOOKS = {
    "people-handbook.pdf": ("People handbook", ["vacation", "remote-work", "expenses", "onboarding"]),
    "engineering-handbook.pdf": ("Engineering handbook", ["oncall", "security", "search-architecture"]),
    "payments-handbook.pdf": ("Payments handbook", ["payments"]),
}


@dataclass(frozen=True)
class Block:
    kind: str       # heading | paragraph | item
    text: str       # one line: a Markdown paragraph's soft line breaks are spaces
    level: int = 0  # headings: 1 for '#'


def blocks(markdown: str) -> list[Block]:
    """The headings, paragraphs and list items of a Markdown page, as markdown-it-py parses them."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(markdown)
    out, in_item = [], False
    for i, token in enumerate(tokens):
        if token.type == "list_item_open":
            in_item = True
        elif token.type == "list_item_close":
            in_item = False
        elif token.type == "inline":
            text = " ".join(token.content.split())
            opener = tokens[i - 1]
            if opener.type == "heading_open":
                out.append(Block("heading", text, int(opener.tag[1])))
            else:
                out.append(Block("item" if in_item else "paragraph", text))
    return out


def render_pdf(chapters: list[str], title: str) -> bytes:
    """One PDF, each Markdown page a chapter starting on a new page; its headings are bookmarks too."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author("Lumen Labs")
    for markdown in chapters:
        pdf.add_page()
        for block in blocks(markdown):
            if block.kind == "heading":
                pdf.start_section(block.text, level=block.level - 1)  # the outline: where the sections are
                pdf.set_font("helvetica", "B", {1: 16, 2: 13}.get(block.level, 12))
                pdf.multi_cell(0, 8, block.text, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(1)
            else:
                pdf.set_font("helvetica", size=11)
                pdf.multi_cell(0, 5.5, ("- " if block.kind == "item" else "") + block.text,
                               new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
    return bytes(pdf.output())


def render_docx(markdown: str, title: str) -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.core_properties.author = "Lumen Labs"
    for block in blocks(markdown):
        if block.kind == "heading":
            document.add_heading(block.text, block.level)
        else:
            document.add_paragraph(block.text, style="List Bullet" if block.kind == "item" else None)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def render_html(markdown: str, title: str, url: str) -> bytes:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").render(markdown)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html_escape.escape(title)}</title>
<link rel="canonical" href="{html_escape.escape(url)}"></head><body>
<nav><a href="/">Intranet home</a> | <a href="/handbook">Handbook</a> | <a href="/people">People directory</a>
 | <a href="/it">IT help desk</a></nav>
<main><article>
{body}</article></main>
<footer><p>Copyright 2026 Lumen Labs. Internal use only. <a href="/privacy">Privacy</a></p></footer>
</body></html>
"""
    return page.encode()


def page(name: str) -> str:
    return (HANDBOOK / f"{name}.md").read_text()


def title_of(markdown: str) -> str:
    return next(b.text for b in blocks(markdown) if b.kind == "heading")


def write_books(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file, (title, names) in BOOKS.items():
        path = out / file
        path.write_bytes(render_pdf([page(n) for n in names], title))
        written.append(path)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / ".out" / "pdfs", help="folder for the PDFs")
    args = ap.parse_args()
    for path in write_books(args.out):
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path} "
              f"({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    sys.exit(main())
