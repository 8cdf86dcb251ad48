"""The indexer test corpus: Markdown files long enough to make several chunks each."""

from __future__ import annotations

from pathlib import Path


def write_corpus(folder: Path, n: int = 6) -> list[Path]:
    """n markdown files with distinct, multi-chunk content."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        body = " ".join(f"word{i}_{j}" for j in range(60))
        path = folder / f"doc{i}.md"
        path.write_text(
            f"# Document {i}\n\nTopic{i} is about subject{i}. {body}\n\n## Details\n\nMore {body}\n"
        )
        paths.append(path)
    return paths
