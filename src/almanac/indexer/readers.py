"""Document readers: a file's bytes -> a title and sections of clean text, each with a locator.

A locator says where a section sits: the heading path for markdown, HTML and docx
(``"Guide > Install > Linux"``), ``"page N"`` for PDF, ``""`` for plain text. This module checks the type
and size limits and dispatches by suffix: markdown and HTML to `markup_reader`, PDF and docx to
`office_reader`; plain text it reads itself.

    >>> doc = read_bytes("notes.md", b"# Guide\\nIntro.\\n## Install\\nRun it.", max_bytes=1000)
    >>> doc.title, [(s.locator, s.text) for s in doc.sections]
    ('Guide', [('Guide', 'Intro.'), ('Guide > Install', 'Run it.')])
"""

from __future__ import annotations

import codecs
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from almanac.core.errors import FileTooLargeError, InputError, UnreadableFileError, UnsupportedFileError
from almanac.core.types import Section
from almanac.indexer.markup_reader import read_html, read_markdown
from almanac.indexer.office_reader import read_docx, read_pdf
from almanac.indexer.parsed_document import DEFAULT_MAX_CHARS, ReadDocument, text_limit_error, tidy

__all__ = ["SUPPORTED_SUFFIXES", "ReadDocument", "iter_files", "read_bytes", "read_document"]

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"})


def read_document(path: Path, max_bytes: int, max_chars: int = DEFAULT_MAX_CHARS) -> ReadDocument:
    """Read a file from disk; raises UnsupportedFileError, FileTooLargeError or UnreadableFileError."""
    _check_suffix(path.name)
    _check_size(path.name, path.stat().st_size, max_bytes)
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)  # bounded: the file may have grown since stat
    _check_size(path.name, len(data), max_bytes)
    return _checked_text(path.name, _parse(path.name, data, max_bytes, max_chars), max_chars)


def read_bytes(name: str, data: bytes, max_bytes: int, max_chars: int = DEFAULT_MAX_CHARS) -> ReadDocument:
    """Read an uploaded file; the type comes from the suffix of `name`.

    `max_chars` bounds the text a file may yield (FileTooLargeError past it): a 2 KB PDF can repeat one
    large page thousands of times, and a small .docx can hold a huge XML part.
    """
    name = Path(name).name or "upload"
    _check_suffix(name)
    _check_size(name, len(data), max_bytes)
    return _checked_text(name, _parse(name, data, max_bytes, max_chars), max_chars)


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


def _checked_text(name: str, doc: ReadDocument, max_chars: int) -> ReadDocument:
    """`doc`, or FileTooLargeError when its sections hold more than `max_chars` characters."""
    total = sum(len(section.text) for section in doc.sections)
    if total > max_chars:
        raise text_limit_error(name, f"{total} characters of text", max_chars)
    return doc


def _parse(name: str, data: bytes, max_bytes: int, max_chars: int) -> ReadDocument:
    suffix = Path(name).suffix.lower()
    stem = Path(name).stem
    if suffix in (".md", ".markdown"):
        return read_markdown(_decode_text(name, data), stem)
    if suffix in (".html", ".htm"):
        return read_html(data, stem)
    if suffix == ".pdf":
        return read_pdf(name, data, stem, max_chars)
    if suffix == ".docx":
        return read_docx(name, data, stem, max_bytes, max_chars)
    text = tidy(_decode_text(name, data))
    return ReadDocument(stem, [Section(text)] if text else [])


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
