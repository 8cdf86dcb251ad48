"""Office readers: PDF -> one section per page (``"page N"``), docx -> sections located by heading path.

Both refuse what they cannot read honestly, with the fix in the message: encrypted, corrupt or scanned
PDFs, and corrupt, password-protected or zip-bomb .docx files (UnreadableFileError).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

from almanac.core.errors import FileTooLargeError, UnreadableFileError
from almanac.core.types import Section
from almanac.indexer.parsed_document import ReadDocument, SectionBuilder, text_limit_error, tidy

_DOCX_UNZIP_RATIO = 20  # a .docx may inflate to this many times max_bytes; more looks like a zip bomb
# WordprocessingML spends many bytes of markup per character of text; XML parts beyond this many bytes per
# allowed character cannot hold a document within the text limit, and parsing them takes minutes.
_XML_BYTES_PER_CHAR = 16
_UNZIP_BLOCK = 1024 * 1024


def read_pdf(name: str, data: bytes, stem: str, max_chars: int) -> ReadDocument:
    """Pages with text as sections; the title is the PDF's own (unless blank or "untitled"), else `stem`.

    Extraction stops as soon as the text passes `max_chars` (a tiny PDF may repeat one page endlessly).
    """
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFileError(
                f"{name}: the PDF is encrypted with a password; save an unprotected copy "
                "(for example `qpdf --decrypt`) and ingest that"
            )
        pages = _page_texts(name, reader.pages, max_chars)
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except (UnreadableFileError, FileTooLargeError):
        raise
    except Exception as exc:  # pypdf raises many kinds of errors on damaged input
        raise UnreadableFileError(
            f"{name}: cannot read the PDF ({type(exc).__name__}); the file looks corrupt; "
            "re-export or repair it and try again"
        ) from exc
    sections = [Section(text, f"page {n}") for n, text in enumerate(pages, start=1) if text]
    if not sections:
        raise UnreadableFileError(
            f"{name}: the PDF has no extractable text and looks scanned; run OCR on it first "
            "(for example `ocrmypdf`) and ingest the result"
        )
    meta_title = str(meta_title).strip()
    return ReadDocument(meta_title if meta_title.lower() not in ("", "untitled") else stem, sections)


def _page_texts(name: str, pages: Any, max_chars: int) -> list[str]:
    texts: list[str] = []
    total = 0
    for page in pages:
        texts.append(tidy(page.extract_text() or ""))
        total += len(texts[-1])
        if total > max_chars:
            raise text_limit_error(name, f"the text of its first {len(texts)} pages", max_chars)
    return texts


def read_docx(name: str, data: bytes, stem: str, max_bytes: int, max_chars: int) -> ReadDocument:
    """Paragraphs and tables under Title/Heading styles; refuses zip bombs and oversized XML before parsing.

    The sizes are counted by inflating each part in blocks, not read from the zip directory, which may lie;
    memory stays at one block whatever the archive claims.
    """
    import docx

    try:
        _check_unpacked(name, data, _DOCX_UNZIP_RATIO * max_bytes, _XML_BYTES_PER_CHAR * max_chars)
        document = docx.Document(io.BytesIO(data))
        title = document.core_properties.title or ""
        out = SectionBuilder()
        _walk_docx(document.iter_inner_content(), out)
    except (UnreadableFileError, FileTooLargeError):
        raise
    except Exception as exc:  # zip, XML and python-docx errors on damaged or protected files
        raise UnreadableFileError(
            f"{name}: cannot read the .docx ({type(exc).__name__}); the file is corrupt or "
            "password-protected; save an unprotected copy from your editor and try again"
        ) from exc
    sections = out.done()
    return ReadDocument(title.strip() or out.first_heading or stem, sections)


def _check_unpacked(name: str, data: bytes, max_total: int, max_xml: int) -> None:
    """Inflate every part in blocks, stopping at the first cap passed (whatever the directory says)."""
    total = xml = 0
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            with archive.open(info) as part:
                while block := part.read(_UNZIP_BLOCK):
                    total += len(block)
                    xml += len(block) if info.filename.endswith((".xml", ".rels")) else 0
                    if total > max_total:
                        raise UnreadableFileError(
                            f"{name}: the .docx unpacks to more than {max_total} bytes, which looks like a "
                            "zip bomb; check the file or raise ALMANAC_INGEST__MAX_FILE_BYTES"
                        )
                    if xml > max_xml:
                        chars = max_xml // _XML_BYTES_PER_CHAR
                        raise text_limit_error(name, f"more than {max_xml} bytes of XML", chars)


def _walk_docx(blocks: Iterator[Any], out: SectionBuilder) -> None:
    for block in blocks:
        if not hasattr(block, "rows"):  # a paragraph
            style = (block.style.name if block.style is not None else "") or ""
            level = _docx_heading_level(style)
            if level is not None:
                out.heading(level, block.text)
            else:
                out.text(block.text)
            continue
        for row in block.rows:
            cells: list[str] = []
            for cell in row.cells:  # merged cells repeat; keep one copy
                text = " ".join(cell.text.split())
                if text and (not cells or cells[-1] != text):
                    cells.append(text)
            out.text(" | ".join(cells))


def _docx_heading_level(style: str) -> int | None:
    """'Title' -> 0 (above every heading), 'Heading 2' -> 2, a body style -> None."""
    if style.lower() == "title":
        return 0
    match = re.fullmatch(r"heading (\d)", style.lower())
    return int(match.group(1)) if match else None
