"""The one-way import rule of DESIGN.md: core imports nothing of ours; indexer, server and finetune import
core; none imports another, except that server may use the indexer's pipeline."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "almanac"
ALLOWED = {
    "core": {"core"},
    "indexer": {"core", "indexer"},
    "server": {"core", "server", "indexer"},
    "finetune": {"core", "finetune"},
}


def _imported_sides(path: Path) -> set[str]:
    sides = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        sides |= {n.split(".")[1] for n in names if n.startswith("almanac.") and n.count(".") >= 1}
    return sides


@pytest.mark.parametrize("side", sorted(ALLOWED))
def test_imports_point_one_way(side: str) -> None:
    files = sorted((PACKAGE / side).rglob("*.py"))
    assert files, f"no modules in {side}/"
    violations = {
        f"{path.relative_to(PACKAGE)} imports almanac.{other}"
        for path in files
        for other in _imported_sides(path) - ALLOWED[side]
    }
    assert not violations, sorted(violations)


def test_the_rule_catches_a_back_edge(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from almanac.server.app import create_app\nimport almanac.finetune.training\n")
    assert _imported_sides(bad) == {"server", "finetune"}
