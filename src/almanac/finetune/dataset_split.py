"""Train / validation / test split by source document, so no passage appears in two splits.

A record belongs to the document its source chunk came from (`QARecord.source`); all records of a document go
to the same split. Documents are shuffled with a seeded RNG, so the split is repeatable. Distractor chunks
that retrieval put in a record's context may come from any document: they are shown, never asked about.

    >>> from almanac.finetune.records import QARecord, SourceRef
    >>> recs = [QARecord("qa", f"q{i}", "a", "r", i, i % 5, f"doc{i % 5}", "a", (SourceRef(i, "o", "a"),))
    ...         for i in range(20)]
    >>> parts = split_by_document(recs, validation=0.2, test=0.2, seed=1)
    >>> [len({r.source for r in parts[name]}) for name in SPLITS]
    [3, 1, 1]
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from almanac.core.errors import InputError
from almanac.finetune.records import QARecord

SPLITS = ("train", "validation", "test")


def _share(n_documents: int, fraction: float) -> int:
    """Documents for a held-out split: at least one when it is wanted and there are enough documents."""
    if fraction <= 0:
        return 0
    return max(1, round(n_documents * fraction)) if n_documents >= 3 else 0


def split_by_document(
    records: Sequence[QARecord], validation: float = 0.1, test: float = 0.1, seed: int = 0
) -> dict[str, list[QARecord]]:
    """{'train': [...], 'validation': [...], 'test': [...]}, whole documents per split."""
    if not 0 <= validation < 1 or not 0 <= test < 1 or validation + test >= 1:
        raise InputError("validation and test fractions must be in [0, 1) and leave room for training")
    documents = sorted({r.source for r in records})
    random.Random(seed).shuffle(documents)
    n_test = _share(len(documents), test)
    n_validation = _share(len(documents), validation)
    assigned = {doc: "test" for doc in documents[:n_test]}
    assigned |= {doc: "validation" for doc in documents[n_test : n_test + n_validation]}
    parts: dict[str, list[QARecord]] = {name: [] for name in SPLITS}
    for record in records:
        parts[assigned.get(record.source, "train")].append(record)
    return parts
