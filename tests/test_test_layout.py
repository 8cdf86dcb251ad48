"""Test modules import shared helpers from support modules, never from another test module or a conftest.

Fakes live in tests/fakes.py and helpers in plainly named modules (tests/server/corpus.py, ...). Importing a
test module runs its collection-time code again and couples two tests; importing a conftest is what pytest
advises against (it is loaded by pytest under its own rules, and may be loaded twice).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def _is_test_module(name: str) -> bool:
    """Whether the last part of a dotted module name is a test module or a conftest."""
    last = name.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def forbidden_imports(path: Path) -> list[str]:
    """The modules `path` imports that are test modules or conftests, as written (relative ones with dots)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _is_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if node.module and _is_test_module(node.module):
                found.append(module)
            else:  # `from tests.server import conftest`: the imported names may be modules themselves
                prefix = module if module.endswith(".") else module + "."
                found += [prefix + a.name for a in node.names if _is_test_module(a.name)]
    return found


def test_no_test_module_imports_another_test_module_or_a_conftest() -> None:
    test_files = sorted(TESTS.rglob("test_*.py"))
    assert len(test_files) > 20  # premise: the glob found the suite
    offenders = {
        str(path.relative_to(TESTS.parent)): bad for path in test_files if (bad := forbidden_imports(path))
    }
    assert offenders == {}, "move what they import into tests/fakes.py or a support module"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from tests.server.conftest import build_services\n", ["tests.server.conftest"]),
        ("from tests.finetune.test_generation import PassageTeacher\n", ["tests.finetune.test_generation"]),
        ("from tests.server import conftest\n", ["tests.server.conftest"]),
        ("from . import test_query as q\n", [".test_query"]),
        ("def f():\n    import tests.indexer.conftest\n", ["tests.indexer.conftest"]),
        ("from tests.fakes import ScriptedChatModel\nfrom tests.server.corpus import DOCS\n", []),
        ("from tests.indexer.crash_harness import ingest\nimport pytest\n", []),
    ],
)
def test_the_check_catches_test_and_conftest_imports(
    tmp_path: Path, source: str, expected: list[str]
) -> None:
    path = tmp_path / "test_sample.py"
    path.write_text(source, encoding="utf-8")
    assert forbidden_imports(path) == expected
