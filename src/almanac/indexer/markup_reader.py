"""Markup readers: markdown and HTML -> sections located by their heading path.

Markdown keeps fenced code as it is; HTML drops navigation, page banners and other boilerplate:

    >>> doc = read_html(b"<nav>Menu</nav><h1>Guide</h1><p>Intro.</p><h2>Install</h2><p>Run it.</p>", "page")
    >>> doc.title, [(s.locator, s.text) for s in doc.sections]
    ('Guide', [('Guide', 'Intro.'), ('Guide > Install', 'Run it.')])
"""

from __future__ import annotations

import re
from typing import Any

from almanac.indexer.parsed_document import ReadDocument, SectionBuilder, strip_control

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
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


def read_markdown(text: str, stem: str) -> ReadDocument:
    """Sections under ATX headings; the title is the first heading, else `stem`."""
    out, fence = SectionBuilder(), ""
    code: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        opened = _FENCE.match(line)
        if fence:  # inside a fenced code block: keep lines as they are until the closing fence
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                out.text("\n".join(code), code=True)
                fence, code = "", []
            else:
                code.append(strip_control(line).rstrip())
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


def read_html(data: bytes, stem: str) -> ReadDocument:
    """Sections under h1-h6, boilerplate dropped; title: <title>, else the first heading, else `stem`."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode_html(data), "lxml")
    title = " ".join(soup.title.get_text().split()) if soup.title else ""
    for tag in soup.find_all(_is_boilerplate):
        if not tag.decomposed:
            tag.decompose()
    out = SectionBuilder()
    _walk_html(soup.body or soup, out)
    sections = out.done()
    return ReadDocument(title or out.first_heading or stem, sections)


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


def _walk_html(root: Any, out: SectionBuilder) -> None:
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
            out.text(strip_control(node.get_text()).rstrip(), code=True)
        else:
            stack.extend(reversed(node.contents))
    out.text(" ".join("".join(inline).split()))
