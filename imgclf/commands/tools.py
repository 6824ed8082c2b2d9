"""``imgclf models`` (what ``--model`` accepts) and ``imgclf cache`` (what the cache holds, or
clear it)."""

from __future__ import annotations

import argparse

__all__ = ["add_cache_parser", "add_models_parser", "cmd_cache", "cmd_models"]


def add_models_parser(sub) -> None:
    """Add ``models`` to the sub-commands ``sub``.

    Args:
        sub: what ``ArgumentParser.add_subparsers`` returned.
    """
    sub.add_parser("models", help="list the models --model accepts")


def add_cache_parser(sub) -> None:
    """Add ``cache`` to the sub-commands ``sub``.

    Args:
        sub: what ``ArgumentParser.add_subparsers`` returned.
    """
    from imgclf.cache import PARTS

    p = sub.add_parser(
        "cache", help="what the cache ($IMGCLF_CACHE, ~/.cache/imgclf) holds, or clear it"
    )
    p.add_argument("action", choices=("info", "clear"))
    p.add_argument("--part", choices=PARTS, help="clear only this part (default: all of them)")


def cmd_cache(args: argparse.Namespace) -> int:
    """Run ``imgclf cache info|clear``.

    Args:
        args: the parsed command line.
    """
    from imgclf.cache import PARTS, cache_info, clear_cache

    if args.action == "clear":
        freed = clear_cache(part=args.part)
        names = [f"{name}/" for name in ((args.part,) if args.part else PARTS)]
        cleared = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        print(f"imgclf cache: cleared {cleared}, {freed / 2**20:.1f} MB freed")
    print(cache_info().format())
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Run ``imgclf models``: one line per registered model.

    Args:
        args: the parsed command line.
    """
    from imgclf.models.registry import list_models

    for spec in list_models():
        print(f"{spec.name:<20} {spec.description}")
    return 0
