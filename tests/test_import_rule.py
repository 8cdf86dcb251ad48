"""The one-way import rule of DESIGN.md, and no import cycle anywhere.

core imports nothing of ours; indexer, server and finetune import core; none imports another, except that the
server may use the indexer modules listed in SERVER_USES_INDEXER (the pipeline for uploads and jobs). Every
import counts, including those inside functions and under TYPE_CHECKING: a cycle hidden there is still one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "almanac"
ALLOWED = {
    "core": {"core"},
    "indexer": {"core", "indexer"},
    "server": {"core", "server", "indexer"},
    "finetune": {"core", "finetune"},
}
SERVER_USES_INDEXER = {
    "almanac.indexer.pipeline",
    "almanac.indexer.ray_engine",  # whether the Ray engine is installed, asked when a job names it
    "almanac.indexer.readers",
    "almanac.indexer.report",
    "almanac.indexer.writer_lock",
}


def _imported_names(path: Path) -> set[str]:
    """Every module name `path` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


def _imported_sides(path: Path) -> set[str]:
    """The packages of ours (core, indexer, ...) that `path` imports from."""
    ours = {n.split(".")[1] for n in _imported_names(path) if n.startswith("almanac.")}
    return ours & {folder.name for folder in PACKAGE.iterdir() if folder.is_dir()}


_GENERATED = {"data", "out"}


def _module_graph(folder: Path, prefix: str) -> dict[str, set[str]]:
    """Module name -> the modules of the same tree it imports."""
    modules = {}
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).with_suffix("").parts
        if any(part.startswith(".") or part in _GENERATED for part in parts[:-1]):
            continue  # virtual environments, checkouts and outputs the benchmarks create
        name = ".".join(p for p in (prefix, *parts) if p and p != "__init__")
        modules[name] = path
    return {name: (_imported_names(path) & modules.keys()) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that returns to its start, or None.

    >>> find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}})
    ['a', 'b', 'c', 'a']
    >>> find_cycle({"a": {"b"}, "b": set()}) is None
    True
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, node])) is not None:
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [])) is not None:
            return cycle
    return None


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


def test_the_server_uses_only_the_listed_indexer_modules() -> None:
    used = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / "server").rglob("*.py"))
        for name in _imported_names(path)
        if name.startswith("almanac.indexer.")
        and name.rsplit(".", 1)[0] not in SERVER_USES_INDEXER
        and name not in SERVER_USES_INDEXER
    }
    assert not used, sorted(used)


@pytest.mark.parametrize(("folder", "prefix"), [(PACKAGE, "almanac"), (ROOT / "bench", "")])
def test_no_import_cycle(folder: Path, prefix: str) -> None:
    graph = _module_graph(folder, prefix)
    assert len(graph) > 5, f"no modules found in {folder}"
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_rules_catch_a_back_edge_and_a_cycle(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from almanac.server.app import create_app\nimport almanac.finetune.training\n")
    assert _imported_sides(bad) == {"server", "finetune"}
    (tmp_path / "a.py").write_text("def f():\n    from b import g\n")  # hidden inside a function
    (tmp_path / "b.py").write_text("import a\n")
    assert find_cycle(_module_graph(tmp_path, "")) == ["a", "b", "a"]
