"""``imgclf runs [DIR]``: the runs of a folder, newest first; ``--compare A B …``: one HTML page
with those runs side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_runs_parser", "cmd_runs"]


def add_runs_parser(sub) -> None:
    """Add ``runs`` to the sub-commands ``sub``.

    Args:
        sub: what ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser(
        "runs", help="list the runs of a folder (newest first), or compare some side by side"
    )
    p.add_argument("dir", nargs="?", default="runs", help="folder of run folders (default: runs)")
    p.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN",
        help="write one HTML page with these runs side by side (run folders, or names in DIR)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        default="compare.html",
        help="the --compare page (default: compare.html)",
    )
    p.add_argument("--format", choices=("table", "json"), default="table")


def _run_path(name: str, folder: str) -> Path:
    given = Path(name).expanduser()
    return given if given.is_dir() or not (Path(folder) / name).is_dir() else Path(folder) / name


def cmd_runs(args: argparse.Namespace) -> int:
    """Run ``imgclf runs``.

    Args:
        args: the parsed command line.
    """
    if args.compare:
        from imgclf.reporting.compare import compare_runs

        print(compare_runs([_run_path(n, args.dir) for n in args.compare], args.out))
        return 0
    from imgclf.reporting.catalog import format_runs, list_runs

    runs = list_runs(args.dir)
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in runs], indent=2, ensure_ascii=False))
    elif runs:
        print(format_runs(runs))
    else:
        print(f"no runs in {args.dir!r}")
    return 0
