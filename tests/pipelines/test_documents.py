"""PDF, HTML and DOCX files as sources: real files written by fpdf2 and python-docx (HTML as strings),
read into Markdown-shaped text with their metadata; what is not what its suffix says, a scan, an encrypted
and a truncated PDF are refused with the reason and the run goes on; `sie run` over a folder of them."""

from __future__ import annotations

import io
import json

import docx
import lancedb
import pytest
from fpdf import FPDF
from pipeline_helpers import write_pipeline
from test_cli import sie

from pipelines.sources import FileSource
from pipelines.spec import FilesSource

HTML = """<!doctype html><html><head><title>Vacation policy</title>
<link rel="canonical" href="https://example.com/handbook/vacation"></head><body>
<nav><a href="/">Home</a> | <a href="/about">About us</a> | <a href="/jobs">Jobs</a></nav>
<main><h1>Vacation</h1><p>Employees get 25 days of paid vacation per year, taken in agreement with the team.</p>
<h2>Carry-over</h2><p>Up to five unused days carry over into the next year and expire at the end of March.</p>
<table><tr><th>Years</th><th>Days</th></tr><tr><td>0-5</td><td>25</td></tr><tr><td>5+</td><td>30</td></tr></table>
</main><footer>Copyright 2026 Example Corp. All rights reserved.</footer></body></html>"""


def pdf_bytes(pages: list[str], *, password: str | None = None, text: bool = True) -> bytes:
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    pdf.set_title("The Handbook")
    pdf.set_author("Ada Lovelace")
    if password:
        pdf.set_encryption(owner_password="owner", user_password=password)
    for page in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 5, page)
        else:
            pdf.rect(10, 10, 50, 50, style="F")  # a page with only a picture on it, as a scan is
    return bytes(pdf.output())


def docx_bytes() -> bytes:
    d = docx.Document()
    d.core_properties.title = "Handbook"
    d.core_properties.author = "HR"
    d.add_heading("Handbook", 1)
    d.add_paragraph("Welcome to the company.")
    d.add_heading("Vacation", 2)
    d.add_paragraph("Everyone gets 25 days.")
    table = d.add_table(rows=2, cols=2)
    for (r, c), value in {(0, 0): "Years", (0, 1): "Days", (1, 0): "0-5", (1, 1): "25 | more"}.items():
        table.cell(r, c).text = value
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def write(root, files: dict[str, bytes]):
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def test_pdf_pages_html_main_content_and_docx_structure(tmp_path):
    root = write(tmp_path / "docs", {"h.pdf": pdf_bytes(["First page text.", "Second page text."]),
                                     "v.html": HTML.encode(), "d.docx": docx_bytes()})
    src = FileSource(FilesSource(root=str(root)))
    docs = {d.id: d for d in src.documents()}
    assert src.refused == [] and sorted(docs) == ["d.docx", "h.pdf", "v.html"]
    assert docs["h.pdf"].text == "First page text.\fSecond page text."
    assert docs["h.pdf"].metadata == {"format": "pdf", "pages": 2, "title": "The Handbook",
                                      "author": "Ada Lovelace", "path": "h.pdf"}
    html = docs["v.html"]
    assert html.text.startswith("# Vacation\n\nEmployees get 25 days") and "## Carry-over\n" in html.text
    assert "| 0-5 | 25 |" in html.text and "Home" not in html.text and "Copyright" not in html.text
    assert html.metadata == {"format": "html", "url": "https://example.com/handbook/vacation",
                             "title": "Vacation policy", "path": "v.html"}
    assert docs["d.docx"].text == ("# Handbook\n\nWelcome to the company.\n\n## Vacation\n\nEveryone gets 25 days."
                                   "\n\n| Years | Days |\n|---|---|\n| 0-5 | 25 \\| more |\n")
    assert docs["d.docx"].metadata == {"format": "docx", "title": "Handbook", "author": "HR", "path": "d.docx"}


def test_html_without_canonical_link_is_known_by_its_file_name(tmp_path):
    (tmp_path / "docs" / "p").mkdir(parents=True)
    root = tmp_path / "docs"
    (root / "p" / "page.htm").write_text("<html><body><article><h1>Hi</h1><p>" + "Some words here. " * 10
                                         + "</p></article></body></html>")
    (doc,) = FileSource(FilesSource(root=str(root))).documents()
    assert doc.metadata["url"] == "p/page.htm" and doc.text.startswith("# Hi\n")


def test_scans_encrypted_truncated_and_mislabelled_files_are_refused_with_the_reason(tmp_path):
    good = pdf_bytes(["Readable."])
    root = write(tmp_path / "docs", {
        "ok.pdf": good, "scan.pdf": pdf_bytes(["", ""], text=False),
        "locked.pdf": pdf_bytes(["Secret."], password="pw"), "cut.pdf": good[: len(good) // 3],
        "word.pdf": docx_bytes(), "pdf.docx": good, "fake.docx": b"PK\x03\x04 not really a zip",
        "report.txt": good, "notes.md": b"# fine\n\nplain text",
    })
    src = FileSource(FilesSource(root=str(root)))
    assert sorted(d.id for d in src.documents()) == ["notes.md", "ok.pdf"]
    assert [str(r) for r in src.refused] == [
        "cut.pdf: not a readable PDF: Failed to load document (PDFium: Data format error)",
        "fake.docx: the bytes are a ZIP file, not DOCX as its suffix .docx says",
        "locked.pdf: not a readable PDF: Failed to load document (PDFium: Incorrect password error)",
        "pdf.docx: the bytes are a PDF file, not DOCX as its suffix .docx says",
        "report.txt: the bytes are a PDF file, not text as its suffix .txt says",
        "scan.pdf: no text layer: OCR is not enabled (2 pages without text)",
        "word.pdf: the bytes are a DOCX file, not PDF as its suffix .pdf says",
    ]
    assert src.protects("scan.pdf") and not src.protects("ok.pdf")


@pytest.fixture()
def folder_of_documents(tmp_path, engine_server):
    write(tmp_path / "docs", {
        "handbook.pdf": pdf_bytes(["Vacation is 25 days a year.\n\nAsk your lead first.", "Sick leave needs a note."]),
        "vacation.html": HTML.encode(), "handbook.docx": docx_bytes(),
        "notes.md": b"# Notes\n\nShort.", "scan.pdf": pdf_bytes([""], text=False)})
    write_pipeline(tmp_path, f"""\
        name: documents
        engine: {engine_server.url}
        source: {{type: files, root: ./docs}}
        steps:
          - chunk: {{by: structure, size: 64, overlap: 8, prefix_section: true}}
          - encode: {{model: tiny/embed}}
        sinks:
          - {{type: lancedb, uri: ./lance, collection: documents}}
        retry: {{attempts: 1}}
    """)
    return tmp_path


def test_sie_run_indexes_a_folder_of_documents_and_refuses_the_scan(folder_of_documents, cli_env):
    out = sie("run", "pipeline.yaml", "--json", env=cli_env, cwd=folder_of_documents)
    report = json.loads(out.stdout.splitlines()[-1])
    assert out.returncode == 0 and report["state"] == "succeeded", out.stderr
    assert report["counters"]["refusals"] == [{"path": "scan.pdf",
                                               "reason": "no text layer: OCR is not enabled (1 page without text)"}]
    rows = lancedb.connect(str(folder_of_documents / "lance")).open_table("documents").to_arrow().to_pylist()
    per_source = {}
    for r in rows:
        meta = json.loads(r["metadata"])
        per_source.setdefault(meta["source"], []).append(meta)
    # by: structure: one chunk per section at this size; the PDF (no headings) is one chunk over its 2 pages.
    assert {k: [(m["section"], m.get("page"), m.get("page_last")) for m in v]
            for k, v in sorted(per_source.items())} == {
        "handbook.docx": [(["Handbook"], None, None), (["Handbook", "Vacation"], None, None)],
        "handbook.pdf": [([], 1, 2)],
        "notes.md": [(["Notes"], None, None)],
        "vacation.html": [(["Vacation"], None, None), (["Vacation", "Carry-over"], None, None)]}
    assert {m["title"] for m in per_source["handbook.pdf"] + per_source["handbook.docx"]} == {"The Handbook",
                                                                                                 "Handbook"}
    assert {m["url"] for m in per_source["vacation.html"]} == {"https://example.com/handbook/vacation"}


def test_a_pdfs_outline_marks_its_headings_so_structure_chunks_get_sections(tmp_path):
    """The text layer has lines only; the bookmarks fpdf2 writes (start_section) say which lines are headings
    and at what level. A bookmark whose title is not a line of its page (here: drawn nowhere) changes nothing."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    for page, (heading, body) in enumerate([("Vacation", "Everyone gets 25 days."),
                                            ("Carry-over", "Five days carry over.")]):
        pdf.add_page()
        pdf.start_section(heading, level=page)
        pdf.multi_cell(0, 5, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.multi_cell(0, 5, body, new_x="LMARGIN", new_y="NEXT")
    pdf.start_section("Not on the page", level=1)
    root = write(tmp_path / "docs", {"h.pdf": bytes(pdf.output())})
    (doc,) = FileSource(FilesSource(root=str(root))).documents()
    assert doc.text == "# Vacation\nEveryone gets 25 days.\f## Carry-over\nFive days carry over."
