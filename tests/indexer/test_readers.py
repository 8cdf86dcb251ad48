"""Readers on real files built in the test: text, markdown, Sphinx-like HTML, PDF, docx, and the bad cases."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pytest
from pypdf import PdfReader, PdfWriter
from reportlab.pdfgen import canvas

from almanac.core.errors import FileTooLargeError, InputError, UnreadableFileError, UnsupportedFileError
from almanac.indexer.readers import SUPPORTED_SUFFIXES, ReadDocument, iter_files, read_bytes, read_document

LIMIT = 1_000_000
SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "documents"


def located(doc: ReadDocument) -> dict[str, str]:
    return {section.locator: section.text for section in doc.sections}


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A PDF with one page per entry; an empty entry is a page with a drawing and no text."""
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf)
    for lines in pages:
        pdf.rect(50, 50, 100, 100)
        for row, line in enumerate(lines):
            pdf.drawString(72, 720 - 16 * row, line)
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


def encrypted(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password="owner-secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_text_is_one_section_with_whitespace_normalised(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(
        b"\xef\xbb\xbfFirst   line\t here.  \r\n\r\n\r\n\r\nSecond\x07 paragraph.\n    indented\n"
    )
    doc = read_document(path, LIMIT)
    assert doc.title == "notes"
    assert [(s.locator, s.text) for s in doc.sections] == [
        ("", "First line here.\n\nSecond paragraph.\n    indented")
    ]


def test_text_in_a_legacy_encoding_is_read_and_binary_is_refused() -> None:
    assert read_bytes("old.txt", "Caf\xe9 cr\xe8me".encode("cp1252"), LIMIT).sections[0].text == "Café crème"
    assert read_bytes("wide.txt", "Grüße".encode("utf-16"), LIMIT).sections[0].text == "Grüße"
    with pytest.raises(UnreadableFileError, match=r"blob\.txt: looks like a binary file"):
        read_bytes("blob.txt", b"\x00\x01\x02binary", LIMIT)
    assert read_bytes("empty.txt", b"  \n\n ", LIMIT).sections == []


MARKDOWN = """Preface before any heading.

# Frame Guide

Pick the frame by height.

## Road bikes

Road frames run small.

### Sizes   ###

| height | size |
|--------|------|
| 170 cm | 54   |

```python
# not a heading
def fit(h):
    return h  *  0.33
```

## Gravel

Gravel frames are longer.

#### Deep note
Skipped a level.

# Appendix
End.
"""


def test_markdown_sections_follow_the_heading_path(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN)
    doc = read_document(path, LIMIT)
    assert doc.title == "Frame Guide"
    sections = located(doc)
    assert list(sections) == [
        "",
        "Frame Guide",
        "Frame Guide > Road bikes",
        "Frame Guide > Road bikes > Sizes",
        "Frame Guide > Gravel",
        "Frame Guide > Gravel > Deep note",
        "Appendix",
    ]
    assert sections[""] == "Preface before any heading."
    sizes = sections["Frame Guide > Road bikes > Sizes"]
    assert "| 170 cm | 54 |" in sizes
    # the fenced block keeps its lines, indentation and spacing, and its comment is not a heading
    assert "# not a heading\ndef fit(h):\n    return h  *  0.33" in sizes
    assert sections["Frame Guide > Gravel > Deep note"] == "Skipped a level."


SPHINX_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8" />
<title>3. An Informal Introduction &#8212; Python 3.12 documentation</title>
<script>var DOCUMENTATION_OPTIONS = {};</script><style>body { color: red }</style></head>
<body>
<div class="mobile-nav"><nav class="nav-content" role="navigation"><a href="#">Python menu</a></nav></div>
<div class="related" role="navigation" aria-label="Related">
  <h3>Navigation</h3><ul><li class="right"><a href="genindex.html">index</a></li>
  <li><a href="modindex.html">modules</a> |</li></ul>
</div>
<div class="document"><div class="documentwrapper"><div class="bodywrapper"><div class="body" role="main">
<section id="intro">
<h1><span class="section-number">3. </span>An Informal Introduction<a class="headerlink">¶</a></h1>
<p>In the following examples, input and output are distinguished by prompts.</p>
<section id="calc"><h2>3.1. Using Python as a <em>Calculator</em><a class="headerlink" href="#calc">¶</a></h2>
<section id="numbers"><h3>3.1.1. Numbers<a class="headerlink" href="#numbers">¶</a></h3>
<p>The interpreter acts as a simple <em>calc</em>ulator: type
   an expression.</p>
<div class="highlight-python3 notranslate"><div class="highlight">
<pre><span></span><span class="gp">&gt;&gt;&gt; </span><span class="mi">2</span> <span class="o">+</span> 2
<span class="go">4</span>
<span class="gp">&gt;&gt;&gt; </span><span class="k">def</span> <span class="nf">f</span>():
<span class="gp">... </span>    <span class="k">return</span> <span class="mi">1</span>
</pre></div></div>
<!-- a comment that must not show -->
</section></section>
<section id="text"><h2>3.2. Text<a class="headerlink" href="#text">¶</a></h2>
<p>Python can manipulate text, represented by type <code class="docutils literal">str</code>.</p>
<ul class="simple"><li><p>first item</p></li><li><p>second item</p></li></ul>
</section></section>
</div></div></div>
<div class="sphinxsidebar" role="navigation" aria-label="Main"><div class="sphinxsidebarwrapper">
  <h3><a href="#">Table of Contents</a></h3><ul><li><a href="#">3.1. Using Python</a></li></ul>
  <div role="note" aria-label="source link"><h3>This Page</h3>
  <ul class="this-page-menu"><li><a href="#">Report a Bug</a></li></ul></div>
</div></div>
<div class="clearer"></div></div>
<div class="related" role="navigation" aria-label="Related"><h3>Navigation</h3></div>
<div class="footer">&copy; Copyright 2001-2024, Python Software Foundation. Last updated on Jan 01.</div>
</body></html>
"""


def test_sphinx_html_keeps_the_body_and_drops_the_navigation(tmp_path: Path) -> None:
    path = tmp_path / "introduction.html"
    path.write_text(SPHINX_HTML, encoding="utf-8")
    doc = read_document(path, LIMIT)
    assert doc.title == "3. An Informal Introduction — Python 3.12 documentation"
    sections = located(doc)
    assert list(sections) == [
        "3. An Informal Introduction",
        "3. An Informal Introduction > 3.1. Using Python as a Calculator > 3.1.1. Numbers",
        "3. An Informal Introduction > 3.2. Text",
    ]
    numbers = sections["3. An Informal Introduction > 3.1. Using Python as a Calculator > 3.1.1. Numbers"]
    assert numbers.startswith("The interpreter acts as a simple calculator: type an expression.\n")
    assert ">>> 2 + 2\n4\n>>> def f():\n...     return 1" in numbers  # code keeps its lines and indent
    text = sections["3. An Informal Introduction > 3.2. Text"]
    assert text == "Python can manipulate text, represented by type str.\nfirst item\nsecond item"
    everything = " ".join(s.text for s in doc.sections) + " ".join(sections)
    for boilerplate in (
        "Navigation",
        "index",
        "modules",
        "Table of Contents",
        "Report a Bug",
        "This Page",
        "Copyright",
        "Python menu",
        "¶",
        "DOCUMENTATION_OPTIONS",
        "color",
        "comment",
    ):
        assert boilerplate not in everything


def test_html_keeps_an_articles_own_header_and_uses_the_declared_charset() -> None:
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"></head><body>'
        "<header>Site banner</header><article><header><h1>Caf\xe9 hours</h1></header>"
        "<p>Open at 8.</p></article><footer>Imprint</footer><div id='breadcrumbs'>Home</div></body></html>"
    ).encode("latin-1")
    doc = read_bytes("hours.htm", page, LIMIT)
    assert doc.title == "Café hours"  # no <title>: the first heading
    assert [(s.locator, s.text) for s in doc.sections] == [("Café hours", "Open at 8.")]


def test_html_without_a_charset_falls_back_to_utf8_with_replacement() -> None:
    doc = read_bytes("odd.html", b"<p>caf\xc3\xa9 and a stray \xff byte</p>", LIMIT)
    assert doc.sections[0].text == "café and a stray \ufffd byte"
    assert doc.sections[0].locator == ""


def test_pdf_gives_one_section_per_page_and_skips_empty_pages(tmp_path: Path) -> None:
    path = tmp_path / "manual.pdf"
    path.write_bytes(
        pdf_bytes([["Frame warranty lasts ten years."], [], ["Stores open at 9.", "Closed Sundays."]])
    )
    doc = read_document(path, LIMIT)
    assert doc.title == "manual"
    assert [s.locator for s in doc.sections] == ["page 1", "page 3"]
    assert doc.sections[0].text == "Frame warranty lasts ten years."
    assert doc.sections[1].text == "Stores open at 9.\nClosed Sundays."


def test_encrypted_pdf_is_refused_unless_the_password_is_empty() -> None:
    plain = pdf_bytes([["Secret roadmap."], ["Page two."]])
    with pytest.raises(UnreadableFileError, match=r"locked\.pdf: the PDF is encrypted") as err:
        read_bytes("locked.pdf", encrypted(plain, "hunter2"), LIMIT)
    assert "\n" not in str(err.value)
    doc = read_bytes("open.pdf", encrypted(plain, ""), LIMIT)  # owner password only: readable
    assert [s.text for s in doc.sections] == ["Secret roadmap.", "Page two."]


@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_corrupt_pdf_is_unreadable(keep: float) -> None:
    data = pdf_bytes([["Some text."], ["More text."]])
    with pytest.raises(UnreadableFileError, match=r"broken\.pdf: cannot read the PDF .*corrupt"):
        read_bytes("broken.pdf", data[: int(len(data) * keep)], LIMIT)


def test_pdf_without_text_asks_for_ocr() -> None:
    with pytest.raises(UnreadableFileError, match=r"scan\.pdf: .*looks scanned; run OCR"):
        read_bytes("scan.pdf", pdf_bytes([[], []]), LIMIT)


def docx_bytes() -> bytes:
    document = docx.Document()
    document.core_properties.title = ""
    document.add_heading("Fleet Manual", 0)
    document.add_paragraph("Read   this first.")
    document.add_heading("Maintenance", 1)
    document.add_paragraph("Oil the chain monthly.")
    document.add_heading("Brakes", 2)
    document.add_paragraph("Check the pads.")
    table = document.add_table(rows=2, cols=3)
    for col, text in enumerate(["Part", "Interval", "Cost"]):
        table.cell(0, col).text = text
    for col, text in enumerate(["Chain", "1 month", "12 EUR"]):
        table.cell(1, col).text = text
    document.add_paragraph("")
    document.add_heading("Storage", 1)
    document.add_paragraph("Keep it dry.")
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def test_docx_headings_give_locators_and_tables_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "fleet.docx"
    path.write_bytes(docx_bytes())
    doc = read_document(path, LIMIT)
    assert doc.title == "Fleet Manual"
    assert located(doc) == {
        "Fleet Manual": "Read this first.",
        "Fleet Manual > Maintenance": "Oil the chain monthly.",
        "Fleet Manual > Maintenance > Brakes": (
            "Check the pads.\nPart | Interval | Cost\nChain | 1 month | 12 EUR"
        ),
        "Fleet Manual > Storage": "Keep it dry.",
    }


def test_corrupt_docx_is_unreadable() -> None:
    with pytest.raises(UnreadableFileError, match=r"bad\.docx: cannot read the \.docx .*corrupt"):
        read_bytes("bad.docx", docx_bytes()[:500], LIMIT)
    with pytest.raises(UnreadableFileError, match=r"bad\.docx"):
        read_bytes("bad.docx", b"not a zip at all", LIMIT)


def test_unsupported_type_names_the_file_and_lists_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG")
    with pytest.raises(UnsupportedFileError) as err:
        read_document(path, LIMIT)
    message = str(err.value)
    assert message.startswith("photo.png: unsupported file type '.png'")
    assert all(suffix in message for suffix in SUPPORTED_SUFFIXES) and "\n" not in message
    with pytest.raises(UnsupportedFileError, match="no suffix"):
        read_bytes("Makefile", b"all:", LIMIT)


def test_too_large_file_names_size_limit_and_setting(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("word " * 100)
    with pytest.raises(FileTooLargeError) as err:
        read_document(path, max_bytes=499)
    assert str(err.value) == (
        "big.txt: 500 bytes is over the limit of 499 bytes; split the file "
        "or raise the limit with ALMANAC_INGEST__MAX_FILE_BYTES"
    )
    with pytest.raises(FileTooLargeError, match=r"^up\.md: 11 bytes is over the limit of 10 bytes"):
        read_bytes("../../up.md", b"# too long!", max_bytes=10)
    assert read_document(path, max_bytes=500).sections


def test_iter_files_walks_folders_sorted_and_skips_hidden(tmp_path: Path) -> None:
    for rel in ["b.md", "a/z.txt", "a/c.pdf", ".hidden.txt", ".git/config.txt", "a/.cache/x.md", "a/img.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    named = tmp_path / ".hidden.txt"
    found = list(iter_files([tmp_path, tmp_path / "b.md", named]))
    assert found == [
        tmp_path / "a/c.pdf",
        tmp_path / "a/img.png",
        tmp_path / "a/z.txt",
        tmp_path / "b.md",
        named,
    ]
    with pytest.raises(InputError, match="no such file or folder"):
        list(iter_files([tmp_path / "missing"]))


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="no samples/ folder in this checkout")
def test_every_sample_document_reads_into_located_sections() -> None:
    files = [p for p in iter_files([SAMPLES]) if p.suffix in SUPPORTED_SUFFIXES]
    assert len(files) >= 4
    for path in files:
        doc = read_document(path, LIMIT)
        assert doc.title and doc.sections, path
        assert all(section.text.strip() for section in doc.sections)


def test_deeply_nested_html_is_read_without_recursion() -> None:
    depth = 3000
    page = "<html><body>" + "<div><span>" * depth + "deep text" + "</span></div>" * depth + "</body></html>"
    doc = read_bytes("deep.html", page.encode(), LIMIT)
    assert [s.text for s in doc.sections] == ["deep text"]


def test_docx_that_would_unpack_to_far_more_than_the_limit_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * 5_000_000)
    data = buf.getvalue()
    assert len(data) < 50_000
    with pytest.raises(UnreadableFileError, match=r"bomb\.docx: .*zip bomb"):
        read_bytes("bomb.docx", data, max_bytes=100_000)


def test_suffix_case_is_ignored_and_markdown_without_headings_is_titled_by_its_name() -> None:
    doc = read_bytes("Plain Notes.MARKDOWN", b"just a line\n\n\nand another", LIMIT)
    assert doc.title == "Plain Notes"
    assert [(s.locator, s.text) for s in doc.sections] == [("", "just a line\nand another")]


def test_a_small_pdf_repeating_pages_stops_at_the_text_limit() -> None:
    data = pdf_bytes([["The same long line of the same page, again and again. " * 2] * 40] * 60)
    assert len(read_bytes("echo.pdf", data, LIMIT).sections) == 60  # within the default text limit
    with pytest.raises(
        FileTooLargeError, match=r"echo\.pdf: the text of its first \d+ pages .*MAX_TEXT_CHARS"
    ):
        read_bytes("echo.pdf", data, LIMIT, max_chars=20_000)


def test_a_docx_with_more_xml_than_the_text_limit_allows_is_refused_before_parsing() -> None:
    document = docx.Document()
    for n in range(400):
        document.add_paragraph(f"Paragraph {n} of a long report on ferry timetables and pier numbers.")
    buf = io.BytesIO()
    document.save(buf)
    assert len(read_bytes("report.docx", buf.getvalue(), LIMIT).sections[0].text) > 20_000
    with pytest.raises(FileTooLargeError, match=r"report\.docx: more than \d+ bytes of XML"):
        read_bytes("report.docx", buf.getvalue(), LIMIT, max_chars=2_000)


@pytest.mark.parametrize("name", ["long.md", "long.html", "long.txt"])
def test_text_past_the_limit_is_refused_with_the_setting_to_raise(name: str) -> None:
    data = ("<p>" if name.endswith("html") else "") + "word " * 5_000
    with pytest.raises(FileTooLargeError, match=r"long\.\w+: 2\d{4} characters of text .*MAX_TEXT_CHARS"):
        read_bytes(name, data.encode(), LIMIT, max_chars=10_000)
