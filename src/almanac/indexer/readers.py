"""Document readers: a file's bytes -> a title and sections of clean text, each with a locator.

A locator says where a section sits: the heading path for markdown, HTML and docx
(``"Guide > Install > Linux"``), ``"page N"`` for PDF, ``""`` for plain text.

    >>> doc = read_bytes("notes.md", b"# Guide\\nIntro.\\n## Install\\nRun it.", max_bytes=1000)
    >>> doc.title, [(s.locator, s.text) for s in doc.sections]
    ('Guide', [('Guide', 'Intro.'), ('Guide > Install', 'Run it.')])
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from almanac.core.errors import FileTooLargeError, InputError, UnreadableFileError, UnsupportedFileError
from almanac.core.types import Section

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"})

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_INNER_SPACE = re.compile(r"(?<=\S)[ \t\f\v\u00a0]+")
_BOILERPLATE = re.compile(
    r"sidebar|(?:^|[-_])(?:related|breadcrumbs?|navbar|nav|navigation|menu|footer|toc|headerlink)(?:$|[-_])",
    re.IGNORECASE,
)
_DROP_TAGS = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "iframe")
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = frozenset(
    {"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section", "article", "blockquote"}
    | {"figure", "figcaption", "br", "hr", "main", "body"}
)
_DOCX_UNZIP_RATIO = 20  # a .docx may inflate to this many times max_bytes; more looks like a zip bomb


@dataclass(frozen=True)
class ReadDocument:
    """What a reader returns: the document's title and its non-empty sections in order."""

    title: str
    sections: list[Section]


def read_document(path: Path, max_bytes: int) -> ReadDocument:
    """Read a file from disk; raises UnsupportedFileError, FileTooLargeError or UnreadableFileError."""
    _check_suffix(path.name)
    _check_size(path.name, path.stat().st_size, max_bytes)
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)  # bounded: the file may have grown since stat
    _check_size(path.name, len(data), max_bytes)
    return _parse(path.name, data, max_bytes)


def read_bytes(name: str, data: bytes, max_bytes: int) -> ReadDocument:
    """Read an uploaded file; the type comes from the suffix of `name`."""
    name = Path(name).name or "upload"
    _check_suffix(name)
    _check_size(name, len(data), max_bytes)
    return _parse(name, data, max_bytes)


def iter_files(paths: Sequence[Path]) -> Iterator[Path]:
    """Files named directly, plus every file inside named folders (recursively, sorted), each once.

    Unsupported types are yielded too, so callers can report them. Inside folders, hidden files and
    folders (a leading dot) are skipped and symlinked folders are not followed (no cycles).
    """
    seen: set[Path] = set()
    for root in paths:
        if root.is_file():
            found = [root]
        elif root.is_dir():
            found = sorted(_walk(root))
        else:
            raise InputError(f"{root}: no such file or folder; check the path and try again")
        for path in found:
            if path.resolve() not in seen:
                seen.add(path.resolve())
                yield path


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith("."):
                yield Path(folder) / name


def _check_suffix(name: str) -> None:
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UnsupportedFileError(
            f"{name}: unsupported file type {suffix or '(no suffix)'!r}; supported types are {supported}; "
            "convert the file to one of them or leave it out"
        )


def _check_size(name: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise FileTooLargeError(
            f"{name}: {size} bytes is over the limit of {max_bytes} bytes; split the file "
            "or raise the limit with ALMANAC_INGEST__MAX_FILE_BYTES"
        )


def _parse(name: str, data: bytes, max_bytes: int) -> ReadDocument:
    suffix = Path(name).suffix.lower()
    stem = Path(name).stem
    if suffix in (".md", ".markdown"):
        return _read_markdown(_decode_text(name, data), stem)
    if suffix in (".html", ".htm"):
        return _read_html(data, stem)
    if suffix == ".pdf":
        return _read_pdf(name, data, stem)
    if suffix == ".docx":
        return _read_docx(name, data, stem, max_bytes)
    text = _tidy(_decode_text(name, data))
    return ReadDocument(stem, [Section(text)] if text else [])


def _tidy(text: str) -> str:
    """Normalise whitespace: unix newlines, no control characters, single inner spaces (indentation kept),
    no trailing spaces, at most one blank line in a row."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [_INNER_SPACE.sub(" ", line).rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _decode_text(name: str, data: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with a BOM; other bytes read as cp1252; binary is refused."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")
    if b"\x00" in data[:8192]:
        raise UnreadableFileError(
            f"{name}: looks like a binary file, not text; save it as UTF-8 text or use a supported format"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.info("decode name=%s encoding=utf-8 failed; reading as cp1252", name)
        return data.decode("cp1252", errors="replace")


class _SectionBuilder:
    """Collects text under a heading path and closes a section at each heading."""

    def __init__(self) -> None:
        self.path: list[tuple[int, str]] = []
        self.first_heading = ""
        self.lines: list[str] = []
        self.sections: list[Section] = []

    def heading(self, level: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            return
        self.flush()
        self.first_heading = self.first_heading or title
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.path.append((level, title))

    def text(self, line: str, code: bool = False) -> None:
        self.lines.append(line.strip("\n") if code else _tidy(line))

    def flush(self) -> None:
        text = "\n".join(line for line in self.lines if line.strip()).strip("\n")
        if text.strip():
            self.sections.append(Section(text, " > ".join(title for _, title in self.path)))
        self.lines = []

    def done(self) -> list[Section]:
        self.flush()
        return self.sections


def _read_markdown(text: str, stem: str) -> ReadDocument:
    out, fence, code = _SectionBuilder(), "", []
    for line in text.replace("\r\n", "\n").split("\n"):
        opened = _FENCE.match(line)
        if fence:  # inside a fenced code block: keep lines as they are until the closing fence
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                out.text("\n".join(code), code=True)
                fence, code = "", []
            else:
                code.append(_CONTROL.sub("", line).rstrip())
        elif opened:
            fence = opened.group(1)
        elif heading := _ATX.match(line):
            out.heading(len(heading.group(1)), heading.group(2) or "")
        else:
            out.text(line)
    if code:
        out.text("\n".join(code), code=True)
    sections = out.done()
    return ReadDocument(out.first_heading or stem, sections)


def _decode_html(data: bytes) -> str:
    """By the declared charset (meta tag or XML declaration), else UTF-8; bad bytes become U+FFFD."""
    from bs4.dammit import EncodingDetector

    declared = EncodingDetector.find_declared_encoding(data, is_html=True)
    try:
        return data.decode(declared or "utf-8-sig")
    except (LookupError, UnicodeDecodeError):
        return data.decode("utf-8", errors="replace")


def _is_boilerplate(tag: Any) -> bool:
    if tag.name in ("html", "body", "main") or tag.get("role") == "main":
        return False
    if tag.name in ("header", "footer"):  # page banners go; an article's own header keeps its title
        return tag.find_parent(("article", "main")) is None
    if tag.name in _DROP_TAGS or tag.get("role") == "navigation":
        return True
    names = [*tag.get("class", []), tag.get("id") or ""]
    return any(_BOILERPLATE.search(name) for name in names if name)


def _read_html(data: bytes, stem: str) -> ReadDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode_html(data), "lxml")
    title = " ".join(soup.title.get_text().split()) if soup.title else ""
    for tag in soup.find_all(_is_boilerplate):
        if not tag.decomposed:
            tag.decompose()
    out = _SectionBuilder()
    _walk_html(soup.body or soup, out)
    sections = out.done()
    return ReadDocument(title or out.first_heading or stem, sections)


def _walk_html(root: Any, out: _SectionBuilder) -> None:
    """Depth-first walk with an explicit stack (deeply nested pages must not hit the recursion limit)."""
    from bs4.element import NavigableString, PreformattedString

    stack, inline = [root], []
    while stack:
        node = stack.pop()
        if isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, doctypes and the like
                inline.append(str(node))
            continue
        name = node.name
        if name in _HEADINGS or name == "pre" or name in _BLOCKS:
            out.text(" ".join("".join(inline).split()))  # HTML: any whitespace run is one space
            inline = []
        if name in _HEADINGS:
            out.heading(_HEADINGS[name], node.get_text())
        elif name == "pre":
            out.text(_CONTROL.sub("", node.get_text()).rstrip(), code=True)
        else:
            stack.extend(reversed(node.contents))
    out.text(" ".join("".join(inline).split()))


def _read_pdf(name: str, data: bytes, stem: str) -> ReadDocument:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFileError(
                f"{name}: the PDF is encrypted with a password; save an unprotected copy "
                "(for example `qpdf --decrypt`) and ingest that"
            )
        pages = [_tidy(page.extract_text() or "") for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except UnreadableFileError:
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


def _read_docx(name: str, data: bytes, stem: str, max_bytes: int) -> ReadDocument:
    import docx

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
        if inflated > _DOCX_UNZIP_RATIO * max_bytes:
            raise UnreadableFileError(
                f"{name}: the .docx would unpack to {inflated} bytes, which looks like a zip bomb; "
                "check the file or raise ALMANAC_INGEST__MAX_FILE_BYTES"
            )
        document = docx.Document(io.BytesIO(data))
        title = document.core_properties.title or ""
        out = _SectionBuilder()
        _walk_docx(document.iter_inner_content(), out)
    except UnreadableFileError:
        raise
    except Exception as exc:  # zip, XML and python-docx errors on damaged or protected files
        raise UnreadableFileError(
            f"{name}: cannot read the .docx ({type(exc).__name__}); the file is corrupt or "
            "password-protected; save an unprotected copy from your editor and try again"
        ) from exc
    sections = out.done()
    return ReadDocument(title.strip() or out.first_heading or stem, sections)


def _walk_docx(blocks: Iterator[Any], out: _SectionBuilder) -> None:
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
