"""`almanac adapters list | promote | rollback`: the server's default LoRA adapter, switched live."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from almanac.cli.command_parser import CommandParser, examples
from almanac.core.audit_log import audit
from almanac.core.settings import Settings


def register(sub: argparse._SubParsersAction[CommandParser]) -> None:
    """Add `adapters`."""
    adapters = sub.add_parser(
        "adapters",
        help="list, promote or roll back LoRA adapters",
        epilog=examples(
            "almanac adapters list", "almanac adapters promote support-v2", "almanac adapters rollback"
        ),
    )
    actions = adapters.add_subparsers(
        dest="adapters_command", required=True, metavar="ACTION", help="what to do with the adapters"
    )
    p = actions.add_parser(
        "list", help="adapters and the default", epilog=examples("almanac adapters list --json")
    )
    p.add_argument(
        "--json", action="store_true", help="print the default and every adapter's manifest as JSON"
    )
    p.set_defaults(func=cmd_adapters_list)
    p = actions.add_parser(
        "promote",
        help="make an adapter the server's default (no restart)",
        description="Make an adapter the server's default. Unless --force, its stored evaluation\n"
        "(`almanac eval --save`) must score at least as well as the current default's, and a model\n"
        "server (ALMANAC_CHAT__BACKEND=openai) must serve it (vLLM is asked to load it).",
        epilog=examples("almanac adapters promote support-v2", "almanac adapters promote support-v3 --force"),
    )
    p.add_argument("name", help="adapter to make the default (a name from `almanac adapters list`)")
    p.add_argument(
        "--force",
        action="store_true",
        help="promote even without or with a worse evaluation, and without first checking that the model "
        "server (ALMANAC_CHAT__BACKEND=openai) serves it",
    )
    p.set_defaults(func=cmd_adapters_promote)
    p = actions.add_parser(
        "rollback",
        help="return to the default before the last promotion",
        epilog=examples("almanac adapters rollback"),
    )
    p.set_defaults(func=cmd_adapters_rollback)


def cmd_adapters_list(args: argparse.Namespace, settings: Settings) -> int:
    """Print the adapters, marking the default."""
    from almanac.core.adapter_registry import AdapterRegistry

    registry = AdapterRegistry(settings.adapters_dir)
    default = registry.default()
    manifests = registry.list()
    if args.json:
        print(json.dumps({"default": default, "adapters": [asdict(m) for m in manifests]}, indent=2))
        return 0
    if not manifests:
        print(f"no adapters in {settings.adapters_dir}; train one with `almanac finetune train --name NAME`")
    for m in manifests:
        score = (m.evaluation or {}).get("score")
        mark = "*" if m.name == default else " "
        score_text = "not evaluated" if score is None else f"score {score:.3f}"
        print(f"{mark} {m.name:<24} base {m.base_model}  {score_text}  created {m.created_at}")
    print(f"default: {default or 'base model (no adapter)'}")
    return 0


def cmd_adapters_promote(args: argparse.Namespace, settings: Settings) -> int:
    """Make an adapter the default."""
    from almanac.core.adapter_registry import AdapterRegistry

    if settings.chat.backend == "openai" and not args.force:
        from almanac.core.chat_backend import build_openai_chat_model

        # the model server serves it (vLLM loads it at run time) before it becomes the default, or this fails
        build_openai_chat_model(settings).load_adapter(args.name)
    previous = AdapterRegistry(settings.adapters_dir).promote(args.name, force=args.force)
    audit("adapter_promoted", "local", name=args.name, previous=previous, force=args.force)
    print(
        f"default adapter: {args.name} (was {previous or 'the base model'}); undo: almanac adapters rollback"
    )
    return 0


def cmd_adapters_rollback(args: argparse.Namespace, settings: Settings) -> int:
    """Return to the previous default."""
    from almanac.core.adapter_registry import AdapterRegistry

    current = AdapterRegistry(settings.adapters_dir).rollback()
    audit("adapter_rolled_back", "local", default=current)
    print(f"default adapter: {current or 'the base model (no adapter)'}")
    return 0
