"""The command parser: `almanac --help` shows each option's default and each command's examples as written.

Every parser of the tree is a `CommandParser`: argparse builds subcommand parsers with the class of the
parser that adds them, so `add_parser` needs no formatter argument. An option whose default is None or False
shows no default; its help says what leaving it out means instead.

>>> p = CommandParser(prog="demo", epilog=examples("demo --size 3"))
>>> _ = p.add_argument("--size", type=int, default=2, help="how many")
>>> print(p.format_help().split("options:")[1].strip())
-h, --help   show this help message and exit
  --size SIZE  how many (default: 2)
<BLANKLINE>
example:
  demo --size 3
"""

from __future__ import annotations

import argparse
from typing import Any


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults appended to option help; description and epilog kept line by line (for examples)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help  # nothing to show: the help says what an absent option means
        return super()._get_help_string(action)


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser formatted by `HelpFormatter`; the subcommand parsers it adds are CommandParsers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def examples(*lines: str) -> str:
    """An epilog listing example command lines, one per line."""
    return ("example:\n" if len(lines) == 1 else "examples:\n") + "\n".join(f"  {line}" for line in lines)
