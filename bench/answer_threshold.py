"""Calibrate the relevance gate (ALMANAC_ANSWER__MIN_RELEVANCE) on the answer benchmark's questions.

    .venv/bin/python bench/answer_threshold.py          # needs the home of bench/answers.py

For every question, the server's own `prepare` (retrieval, live rows, focus) gives the best
question-sentence similarity of its candidates; no chat model runs. The table shows, per threshold, the
share of answerable questions it would refuse (over-refusal) and of unanswerable ones it would refuse; the
chosen threshold is the highest whose over-refusal stays within the budget.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import answers  # noqa: E402


def relevances(items: list[dict]) -> list[tuple[bool, float]]:
    """(answerable, relevance) for each question."""
    os.environ["ALMANAC_HOME"] = str(answers.HOME)
    from almanac.cli import wiring
    from almanac.core.settings import Settings
    from almanac.server.answering.answer import Ask

    stack = wiring.build_answering(Settings(), base_only=True)
    out = []
    for item in items:
        prepared = stack.answerer.prepare(Ask(item["question"], item["collection"]))
        out.append((item["set"] != "unanswerable", prepared.relevance))
    return out


def sweep(scored: list[tuple[bool, float]], budget: float) -> tuple[float, list[tuple[float, float, float]]]:
    """The chosen threshold and (threshold, over-refusal, refusal) rows."""
    good = [r for ok, r in scored if ok]
    bad = [r for ok, r in scored if not ok]
    rows, chosen = [], 0.0
    for step in range(0, 81, 5):
        threshold = step / 100
        over = sum(r < threshold for r in good) / len(good)
        refused = sum(r < threshold for r in bad) / len(bad)
        rows.append((threshold, over, refused))
        if over <= budget:
            chosen = threshold
    return chosen, rows


def main() -> int:
    """Print the sweep and the chosen threshold."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--budget", type=float, default=0.02, help="largest over-refusal the gate may cause")
    args = parser.parse_args()
    scored = relevances(answers.questions(0, with_pg=False))
    chosen, rows = sweep(scored, args.budget)
    print("| threshold | over-refusal (answerable) | refused (unanswerable) |\n|---|---|---|")
    for threshold, over, refused in rows:
        print(f"| {threshold:.2f} | {over:.3f} | {refused:.3f} |")
    print(f"chosen: {chosen:.2f} (highest with over-refusal <= {args.budget})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
