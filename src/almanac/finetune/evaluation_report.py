"""The evaluation report: metrics side by side (base vs adapter), saved as JSON, storable in the manifest.

The manifest's ``evaluation`` holds what `AdapterRegistry.promote` compares: ``score`` (the adapter's),
``base_score`` (the base model's on the same questions) and ``questions_sha256`` (which questions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from almanac.core.adapter_manifest import AdapterManifest, adapter_folder
from almanac.finetune.evaluation import summarize


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Per-question rows and summaries for each model evaluated, keyed 'base' or the adapter name."""

    questions_path: str
    questions_sha256: str
    collection: str
    k: int
    rows: dict[str, list[dict[str, Any]]]

    @property
    def summaries(self) -> dict[str, dict[str, Any]]:
        """Metrics per model."""
        return {label: summarize(rows, self.k) for label, rows in self.rows.items()}

    def table(self) -> str:
        """Metrics as rows, one column per model, plus the change when there are two."""
        summaries = self.summaries
        labels = list(summaries)
        metrics = list(next(iter(summaries.values())))
        header = ["metric", *labels, *(["change"] if len(labels) == 2 else [])]
        lines = [header]
        for metric in metrics:
            values = [summaries[label][metric] for label in labels]
            cells = [metric, *(_cell(v) for v in values)]
            if len(values) == 2:
                both = all(isinstance(v, float) for v in values) and metric != "questions"
                cells.append(f"{values[1] - values[0]:+.3f}" if both else "")
            lines.append(cells)
        widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in lines
        )

    def to_json(self) -> dict[str, Any]:
        """Everything: where the questions came from, the summaries and every reply."""
        return {
            "questions": self.questions_path,
            "questions_sha256": self.questions_sha256,
            "collection": self.collection,
            "k": self.k,
            "summaries": self.summaries,
            "rows": self.rows,
        }

    def save(self, path: Path) -> None:
        """Write the report as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    def manifest_evaluation(self, adapter: str) -> dict[str, Any]:
        """The summary stored in an adapter's manifest (see the module docstring)."""
        summaries = self.summaries
        base = summaries.get("base")
        return {
            "score": summaries[adapter]["score"],
            "base_score": base["score"] if base else None,
            "questions": self.questions_path,
            "questions_sha256": self.questions_sha256,
            "collection": self.collection,
            "metrics": summaries[adapter],
            "base_metrics": base,
            "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def store_evaluation(adapters_dir: Path, adapter: str, evaluation: dict[str, Any]) -> AdapterManifest:
    """Write `evaluation` into the adapter's manifest (atomically); returns the updated manifest."""
    folder = adapter_folder(adapters_dir, adapter)
    manifest = replace(AdapterManifest.load(folder), evaluation=evaluation)
    manifest.save(folder)
    return manifest


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
