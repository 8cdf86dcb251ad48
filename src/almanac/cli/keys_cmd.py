"""`almanac keys create | list | revoke`: API keys for the server (stored hashed; shown once)."""

from __future__ import annotations

import argparse
import json

from almanac.cli import wiring
from almanac.cli.command_parser import CommandParser, examples
from almanac.core.audit_log import audit
from almanac.core.settings import Settings
from almanac.server.keys.key_store import KeyStore
from almanac.server.keys.principal import SCOPES


def register(sub: argparse._SubParsersAction[CommandParser]) -> None:
    """Add the `keys` command and its subcommands."""
    keys = sub.add_parser(
        "keys",
        help="create, list and revoke API keys",
        epilog=examples(
            "almanac keys create --scope read -c handbook",
            "almanac keys list",
            "almanac keys revoke alm_1a2b3c4d",
        ),
    )
    actions = keys.add_subparsers(
        dest="keys_command", required=True, metavar="ACTION", help="what to do with keys"
    )

    p = actions.add_parser(
        "create",
        help="create a key and print it once",
        epilog=examples(
            "almanac keys create --scope admin", "almanac keys create --scope read --collection handbook"
        ),
    )
    p.add_argument(
        "--scope",
        choices=SCOPES,
        required=True,
        help="what the key may do: read < write < admin, each includes the ones before",
    )
    p.add_argument("--collection", "-c", help="bind the key to one collection (default: any collection)")
    p.set_defaults(func=cmd_create)

    p = actions.add_parser(
        "list",
        help="list keys by prefix (never the keys themselves)",
        epilog=examples("almanac keys list --json"),
    )
    p.add_argument("--json", action="store_true", help="print the keys' prefixes, scopes and states as JSON")
    p.set_defaults(func=cmd_list)

    p = actions.add_parser(
        "revoke", help="revoke a key by its prefix", epilog=examples("almanac keys revoke alm_1a2b3c4d")
    )
    p.add_argument("prefix", help="the key's prefix, as `almanac keys list` shows it")
    p.set_defaults(func=cmd_revoke)


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    """Create a key and print it (the only time it is shown)."""
    key = KeyStore(wiring.open_catalog(settings)).create(args.scope, args.collection)
    audit("key_created", "local", prefix=key[:12], scope=args.scope, collection=args.collection)
    print(key)
    bound = f" bound to collection {args.collection!r}" if args.collection else ""
    print(f"scope {args.scope}{bound}; store it now, it cannot be shown again", flush=True)
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print every key's prefix, scope, collection and state."""
    infos = KeyStore(wiring.open_catalog(settings)).list()
    if args.json:
        rows = [
            {
                "prefix": k.prefix,
                "scope": k.scope,
                "collection": k.collection,
                "created_at": k.created_at.isoformat(),
                "revoked": k.revoked,
            }
            for k in infos
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not infos:
        print("no API keys: the server serves loopback only; add one: `almanac keys create --scope read`")
    for k in infos:
        state = "revoked" if k.revoked else "active"
        where = k.collection or "(any collection)"
        print(f"{k.prefix}  {k.scope:<5}  {where}  {state}  created {k.created_at:%Y-%m-%d %H:%M}")
    return 0


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    """Revoke a key by prefix."""
    KeyStore(wiring.open_catalog(settings)).revoke(args.prefix)
    audit("key_revoked", "local", prefix=args.prefix)
    print(f"revoked {args.prefix}")
    return 0
