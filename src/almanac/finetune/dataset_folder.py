"""The dataset folder `almanac finetune generate` writes and `train` / `eval` read:

generated.jsonl   every record generation produced, before curation (to inspect what was dropped)
train.jsonl  validation.jsonl  test.jsonl   the curated records, split by source document
report.json       generated, kept, dropped per reason, kept per kind and per split
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from almanac.core.errors import InputError
from almanac.core.ports import Embedder
from almanac.core.types import ChunkRecord
from almanac.finetune.curation import CurationConfig, CurationReport, curate
from almanac.finetune.dataset_split import SPLITS, split_by_document
from almanac.finetune.generation import Generator
from almanac.finetune.ports import Retriever
from almanac.finetune.records import write_records

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DatasetFolder:
    """Paths of one generated dataset."""

    path: Path

    @property
    def generated(self) -> Path:
        """All records before curation."""
        return self.path / "generated.jsonl"

    @property
    def report(self) -> Path:
        """The curation report (JSON)."""
        return self.path / "report.json"

    def split(self, name: str) -> Path:
        """``train.jsonl``, ``validation.jsonl`` or ``test.jsonl``."""
        if name not in SPLITS:
            raise InputError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return self.path / f"{name}.jsonl"

    def exists(self) -> bool:
        """Whether a dataset was already written here."""
        return self.split("train").is_file()


def build_dataset(
    folder: DatasetFolder,
    chunks: Sequence[ChunkRecord],
    *,
    generator: Generator,
    embedder: Embedder,
    retriever: Retriever,
    collection: str,
    curation: CurationConfig,
    validation: float = 0.1,
    test: float = 0.1,
    force: bool = False,
    progress: bool = True,
) -> CurationReport:
    """Generate, curate, split by document and write the folder; returns the report (also saved)."""
    if folder.exists() and not force:
        raise InputError(f"a dataset already exists in {folder.path}; choose another --out or pass --force")
    result = generator.run(chunks, collection, progress=progress)
    write_records(folder.generated, result.records)
    kept, report = curate(
        result.records,
        embedder=embedder,
        retriever=retriever,
        collection=collection,
        config=curation,
        unparsable=result.unparsable,
        progress=progress,
        teachers=result.teachers,
    )
    if not kept:
        report.save(folder.report)
        raise InputError(
            f"curation kept none of {report.generated} generated records (see {folder.report}); "
            "use a stronger teacher, more chunks, or looser --support-threshold / --top-k"
        )
    parts = split_by_document(kept, validation=validation, test=test, seed=curation.seed)
    for name in SPLITS:
        write_records(folder.split(name), parts[name])
    report.splits = {name: len(parts[name]) for name in SPLITS}
    report.save(folder.report)
    log.info("dataset written folder=%s kept=%d splits=%s", folder.path, report.kept, report.splits)
    return report
