"""`almanac --help` explains every option: each has help text, each command's help shows an example."""

from __future__ import annotations

import argparse

import pytest

from almanac.cli.main import build_parser


def _commands(
    parser: argparse.ArgumentParser, path: str = "almanac"
) -> list[tuple[str, argparse.ArgumentParser]]:
    """(command line, parser) for `parser` and every subcommand below it, depth first."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _commands(child, f"{path} {name}")
    return found


COMMANDS = _commands(build_parser())


def test_every_command_is_walked() -> None:
    names = {path for path, _ in COMMANDS}
    assert {"almanac ingest", "almanac serve", "almanac keys create", "almanac finetune train"} <= names


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[path for path, _ in COMMANDS])
def test_every_option_has_help(path: str, parser: argparse.ArgumentParser) -> None:
    missing = [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if not (action.help or "").strip() and action.help != argparse.SUPPRESS
    ]
    assert not missing, f"`{path}` options without help: {missing}"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            silent = [a.dest for a in action._choices_actions if not (a.help or "").strip()]
            assert not silent, f"`{path}` subcommands without help: {silent}"


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[path for path, _ in COMMANDS])
def test_every_command_shows_an_example(path: str, parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    assert "example" in text.lower(), f"`{path} --help` shows no example"
    assert f"\n  {path.split()[0]} " in text, f"`{path} --help` shows no example command line"


def test_defaults_are_shown() -> None:
    search = dict(COMMANDS)["almanac search"].format_help()
    assert "(default: 5)" in search  # -k
    assert "(default: None)" not in search and "(default: False)" not in search
