"""GET / (the page) and GET /static/{name} (its scripts and style sheet), under a strict CSP header.

The page holds no data, so it is served without a key; the API calls it makes carry the key the user typed
(kept in the browser session only). Every file comes from the package's `static/` folder; the CSP allows
only this origin (no inline script or style, no external font or CDN: the machines may be offline) and the
page cannot be framed.

    >>> content_type("page.js")
    'text/javascript; charset=utf-8'
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Response

from almanac.core.errors import NotFoundError

STATIC_DIR = Path(__file__).with_name("static")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate: an upgraded server serves its own script at once
}
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_ASSET = re.compile(r"^[a-z][a-z0-9-]*\.(js|css)$")  # no path separators or dots: nothing outside static/

router = APIRouter(tags=["page"], include_in_schema=False)


def content_type(name: str) -> str:
    """The Content-Type of a static file, by its suffix."""
    return f"{_TYPES[Path(name).suffix]}; charset=utf-8"


def _file(name: str) -> Response:
    path = STATIC_DIR / name
    if not path.is_file():
        raise NotFoundError(f"no file {name!r} on the page; open / for the page")
    return Response(path.read_bytes(), media_type=content_type(name), headers=PAGE_HEADERS)


# Plain defs: FastAPI runs them in the threadpool, so reading the file never blocks the event loop.
@router.get("/")
def page() -> Response:
    """The page: ask a question, add documents, manage the API key."""
    return _file("index.html")


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    """A script or style sheet of the page."""
    if not _ASSET.match(name):
        raise NotFoundError(f"no file {name!r} on the page; open / for the page")
    return _file(name)
