"""``imgclf runs [DIR]``: the runs of a folder, newest first; ``--compare A B …``: one HTML page
with those runs side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from imgclf.errors import DataError, invalid_value

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
    """The run folder ``name`` (a path, or a name inside ``folder``), checked."""
    from imgclf.reporting.catalog import is_run

    for candidate in (Path(name).expanduser(), Path(folder).expanduser() / name):
        if is_run(candidate):
            return candidate
    raise DataError(
        f"run {name!r} is not a run folder (no config.yaml), nor a run in {folder!r}; pass a "
        "folder made by `imgclf train`"
    )


def cmd_runs(args: argparse.Namespace) -> int:
    """Run ``imgclf runs``.

    Args:
        args: the parsed command line.
    """
    if args.compare:
        from imgclf.reporting.compare import compare_runs

        if len(args.compare) < 2:
            raise invalid_value("compare", args.compare, "two or more runs")

        print(compare_runs([_run_path(n, args.dir) for n in args.compare], args.out))
        return 0
    from imgclf.reporting.catalog import format_runs, list_runs

    if not Path(args.dir).expanduser().is_dir():
        raise DataError(
            f"runs folder {args.dir!r} does not exist; pass the folder `imgclf train --out` "
            "wrote to (default: runs)"
        )
    runs = list_runs(args.dir)
    if args.format == "json":
        print(json.dumps([r.to_dict() for r in runs], indent=2, ensure_ascii=False))
    elif runs:
        print(format_runs(runs))
    else:
        print(f"no runs in {args.dir!r}")
    return 0
