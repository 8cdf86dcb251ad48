"""Entry point of the `almanac` command: parse, load settings, run one command, map errors to exit codes.

Exit codes: 0 success; 1 the command ran but some inputs failed (listed); 2 the command could not run.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from almanac import __version__
from almanac.cli.command_parser import CommandParser, examples
from almanac.core.errors import AlmanacError, ConfigError
from almanac.core.log_format import configure_logging
from almanac.core.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command registered."""
    from almanac.cli import index_admin_cmd, index_cmd

    parser = CommandParser(
        prog="almanac",
        description="Retrieval-augmented question answering over your documents and databases.\n"
        "Settings come from ALMANAC_* environment variables (e.g. ALMANAC_HOME=.almanac);\n"
        "`almanac COMMAND --help` explains each command.",
        epilog=examples(
            "almanac ingest samples/documents",
            'almanac search "opening hours" -k 3',
            "almanac serve --port 8000",
            "almanac --log-format json -v serve",
        ),
    )
    parser.add_argument("--version", action="version", version=f"almanac {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug logs")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text (default) or as JSON objects, one a line, with request ids (for collectors)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="the command to run")
    index_cmd.register(sub)
    index_admin_cmd.register(sub)
    for name in ("serve_cmd", "keys_cmd", "finetune_cmd", "adapters_cmd", "backup_cmd"):
        module = _optional_module(name)
        if module is not None:
            module.register(sub)
    return parser


def _optional_module(name: str) -> ModuleType | None:
    import importlib

    try:
        return importlib.import_module(f"almanac.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"almanac.cli.{name}":
            raise
        return None


def check_home(home: Path) -> None:
    """Refuse an ALMANAC_HOME that exists but is not a folder (a file: every command would fail in mkdir)."""
    if home.exists() and not home.is_dir():
        raise ConfigError(
            f"ALMANAC_HOME={home} is a file, not a folder; point ALMANAC_HOME at a folder (it is created "
            "when missing)"
        )


_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def settings_problem(exc: ValidationError) -> str:
    """One line naming the environment variables at fault and what is wrong with them.

    >>> from pydantic import BaseModel
    >>> class Chat(BaseModel):
    ...     max_new_tokens: int
    >>> try:
    ...     Chat(max_new_tokens="many")
    ... except ValidationError as exc:
    ...     settings_problem(exc)
    'ALMANAC_MAX_NEW_TOKENS: Input should be a valid integer, unable to parse string as an integer'
    """
    parts = []
    for error in exc.errors():
        name = (
            "ALMANAC_" + "__".join(str(part).upper() for part in error["loc"]) if error["loc"] else "settings"
        )
        parts.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded at run time
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # libgomp spin-waits by default; on shared cores that stalls every torch call (bench/serve.py, run A vs B)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    configure_logging(level, args.log_format)
    for noisy in ("bm25s", "httpx", "sentence_transformers", "transformers"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING) if args.verbose < 2 else level)
    try:
        settings = Settings()
        check_home(settings.home)
        return int(args.func(args, settings))
    except AlmanacError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a setting from the environment that does not fit
        print(f"error: {settings_problem(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; committed work is kept, re-run to continue", file=sys.stderr)
        return 130
    except (OSError, DBAPIError) as exc:
        if isinstance(exc, OSError) and exc.errno not in _DISK_FULL:
            raise
        first = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
        print(
            f"error: writing failed ({first}); work committed before is kept and nothing partial is used; "
            "check the free disk space (and that ALMANAC_CATALOG__URL is reachable), then re-run",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
