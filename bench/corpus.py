"""The benchmark corpus: the Python 3.11 documentation (HTML) from the Debian package python3.11-doc.

`ensure_corpus` downloads the package with `apt-get download` and unpacks it with `dpkg -x` into bench/data/
(gitignored) once; later calls find it there. `select_files` picks the HTML pages a run uses:

    python bench/corpus.py --subset library --limit-files 40     # fetch if needed, list what a run would use
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "python3.11-doc"
DATA_DIR = Path(__file__).resolve().parent / "data"
HTML_SUBDIR = Path("usr/share/doc/python3.11/html")
ALL = "all"

_NO_APT = f"""cannot fetch the corpus: {{reason}}
Fetch it by hand, then re-run:
  apt-get update && (cd /tmp && apt-get download {PACKAGE})
  dpkg -x /tmp/{PACKAGE}_*.deb {DATA_DIR}
or download the .deb from https://packages.debian.org/bookworm/all/{PACKAGE}/download on a machine
with network access, copy it here and run the dpkg -x line above.
The HTML must end up in {DATA_DIR / HTML_SUBDIR}."""


class CorpusError(RuntimeError):
    """The corpus is missing and cannot be fetched; the message says how to fetch it by hand."""


def html_root(data_dir: Path = DATA_DIR) -> Path:
    """Where the unpacked HTML documentation lives."""
    return data_dir / HTML_SUBDIR


def ensure_corpus(data_dir: Path = DATA_DIR) -> Path:
    """The HTML root, downloading and unpacking the Debian package first if it is not there yet."""
    root = html_root(data_dir)
    if (root / "index.html").is_file():
        return root
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise CorpusError(_NO_APT.format(reason=f"`{tool}` is not installed (not a Debian system?)"))
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
        fetched = subprocess.run(
            ["apt-get", "download", PACKAGE], cwd=tmp, capture_output=True, text=True, check=False
        )
        debs = sorted(Path(tmp).glob(f"{PACKAGE}_*.deb"))
        if fetched.returncode != 0 or not debs:
            reason = (fetched.stderr or fetched.stdout).strip().splitlines()[-1:] or ["no .deb downloaded"]
            raise CorpusError(_NO_APT.format(reason=f"`apt-get download {PACKAGE}` failed: {reason[0]}"))
        subprocess.run(["dpkg", "-x", str(debs[-1]), str(data_dir)], check=True)
        (data_dir / "PACKAGE").write_text(debs[-1].name + "\n")  # the exact version, for the figures
    if not (root / "index.html").is_file():
        raise CorpusError(_NO_APT.format(reason=f"the package did not contain {HTML_SUBDIR}/index.html"))
    return root


def package_version(data_dir: Path = DATA_DIR) -> str:
    """The .deb the corpus came from (e.g. python3.11-doc_3.11.2-6+deb12u9_all.deb), or 'unknown'."""
    marker = data_dir / "PACKAGE"
    return marker.read_text().strip() if marker.is_file() else "unknown"


def subsets(root: Path) -> list[str]:
    """Names accepted by --subset: 'all' and each top-level folder of the documentation (library, ...)."""
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    return [ALL, *folders]


def select_files(root: Path, subset: str, limit: int | None = None) -> list[Path]:
    """Sorted HTML pages of a subset; with `limit`, that many pages spread evenly over the sorted list
    (every k-th page), so a small run still samples the whole subset rather than its first letters."""
    if subset == ALL:
        pages = [p for p in root.rglob("*.html") if not p.relative_to(root).parts[0].startswith("_")]
    elif subset in subsets(root):
        pages = list((root / subset).rglob("*.html"))
    else:
        raise CorpusError(f"unknown subset {subset!r}; choose one of {', '.join(subsets(root))}")
    pages.sort()
    if limit is None or limit >= len(pages):
        return pages
    if limit < 1:
        raise CorpusError("--limit-files must be at least 1")
    step = len(pages) / limit
    return [pages[int(i * step)] for i in range(limit)]


def main(argv: list[str] | None = None) -> int:
    """Fetch the corpus if needed and list the selected files with their total size."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subset", default="library")
    p.add_argument("--limit-files", type=int)
    p.add_argument("--list", action="store_true", help="print the selected paths")
    args = p.parse_args(argv)
    try:
        root = ensure_corpus()
        files = select_files(root, args.subset, args.limit_files)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(str(f) for f in files))
    size = sum(f.stat().st_size for f in files)
    print(f"{len(files)} HTML files, {size / 1e6:.1f} MB, subset {args.subset!r} in {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
