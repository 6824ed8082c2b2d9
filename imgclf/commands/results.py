"""``imgclf evaluate`` (metrics on the test split or a labelled folder) and ``imgclf report``
(rebuild report.html)."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["add_evaluate_parser", "add_report_parser", "cmd_evaluate", "cmd_report"]


def add_evaluate_parser(sub) -> None:
    """Add ``evaluate`` to the sub-commands ``sub``.

    Args:
        sub: what ``ArgumentParser.add_subparsers`` returned.
    """
    from imgclf.evaluation.tta import add_tta_argument

    p = sub.add_parser(
        "evaluate", help="metrics of a run on its test split or on a labelled folder"
    )
    p.add_argument("run", help="run folder made by `imgclf train`")
    p.add_argument(
        "data", nargs="?", help="a separate labelled folder (class names must match the run's)"
    )
    p.add_argument("--format", choices=("table", "json"), default="table")
    add_tta_argument(p)


def add_report_parser(sub) -> None:
    """Add ``report`` to the sub-commands ``sub``.

    Args:
        sub: what ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser("report", help="rebuild report.html (and its figures) for an existing run")
    p.add_argument("run", help="run folder made by `imgclf train`")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write report.html and its figures into DIR (created if needed) instead of the run "
        "folder, e.g. for a run on a read-only disk",
    )


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run ``imgclf evaluate``.

    Args:
        args: the parsed command line.
    """
    from imgclf.data.scan import one_line
    from imgclf.evaluation.evaluate import evaluate_run, evaluation_dir
    from imgclf.evaluation.metrics import format_metrics
    from imgclf.evaluation.tta import parse_tta
    from imgclf.reporting.report import build_evaluation_report
    from imgclf.serving.predictor import load_run

    def show(metrics) -> None:  # before saving: a run folder that cannot be written loses nothing
        if args.format == "json":
            print(json.dumps(metrics.to_dict(), indent=2), flush=True)
            if metrics.honesty.get("differs"):
                print(metrics.honesty["message"], file=sys.stderr, flush=True)
        else:
            print(format_metrics(metrics))
            for row in metrics.skipped:
                print(f"skipped {one_line(row['path'])}: {row['reason']}")
            sys.stdout.flush()

    parse_tta(args.tta)  # a bad value fails before the run loads
    run = load_run(args.run)
    evaluate_run(run, args.data, verbose=1, on_metrics=show, tta=args.tta)
    if args.data is not None:
        out = build_evaluation_report(run.path, evaluation_dir(run.path, args.data))
        print(f"report: {out}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Run ``imgclf report``: print the path of the report written.

    Args:
        args: the parsed command line.
    """
    from imgclf.reporting.report import build_report
    from imgclf.serving.predictor import load_run

    run = load_run(args.run)
    print(build_report(run.path, run.model, out=args.out))
    return 0
