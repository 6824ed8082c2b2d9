"""``imgclf doctor``: check a data folder (unusable files, duplicates, balance, sizes)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from imgclf.constants import LABEL_ISSUE_OUT
from imgclf.errors import DataError, invalid_value

__all__ = ["add_doctor_parser", "cmd_doctor"]

EXIT_PROBLEM = 1


def add_doctor_parser(sub) -> None:
    """Add ``doctor`` to the sub-commands ``sub``.

    Args:
        sub: what ``ArgumentParser.add_subparsers`` returned.
    """
    p = sub.add_parser(
        "doctor", help="check a data folder: unusable files, duplicates, class balance, sizes"
    )
    p.add_argument("data", help="DATA/<class>/<images>, or DATA/train|val|test/<class>/<images>")
    p.add_argument("--json", metavar="FILE", help="also write the full report as JSON to FILE")
    p.add_argument(
        "--near-threshold",
        type=int,
        default=None,
        metavar="N",
        help="near-duplicate distance in pHash bits (of 64); -1 turns near-duplicate search "
        "off (default: 4)",
    )
    p.add_argument(
        "--group-by",
        metavar="GROUP_BY",
        help="regex or CSV of path,group: report groups found in several splits",
    )
    p.add_argument(
        "--run",
        metavar="RUN",
        help="a run folder: report duplicates across the splits of its split.csv",
    )
    p.add_argument(
        "--labels",
        action="store_true",
        help="also find images whose label is likely wrong (confident learning on out-of-fold "
        "predictions over cached pretrained features); writes label_issues.csv and "
        "label_issues.html into --out",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help=f"folder for --labels' files, outside DATA (default: ./{LABEL_ISSUE_OUT})",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 on unusable files, label conflicts or leakage (for CI)",
    )


def _run_splits(run: str, root: str) -> dict[str, str]:
    """path → split of the run folder's split.csv."""
    from imgclf.data.split import read_manifest
    from imgclf.runs import RunFiles, read_json

    run_dir = Path(run)
    if not (run_dir / RunFiles.CLASSES).is_file():
        raise DataError(
            f"run folder {run!r} has no {RunFiles.CLASSES}; expected a folder made by "
            "`imgclf train`"
        )
    classes = read_json(run_dir / RunFiles.CLASSES)
    return {i.path: i.split for i in read_manifest(run_dir / RunFiles.SPLIT, classes, root)}


def cmd_doctor(args: argparse.Namespace) -> int:
    """``imgclf doctor``: scan DATA, diagnose it (with the splits of ``--run``), print it, save
    ``--json``; returns 1 when ``--strict`` finds something.

    Args:
        args: the parsed command line.
    """
    from imgclf.commands.doctor_labels import label_out_dir, run_label_doctor
    from imgclf.data.doctor import DEFAULT_NEAR_THRESHOLD, diagnose
    from imgclf.data.groups import check_group_by
    from imgclf.data.scan import scan_folder

    threshold = DEFAULT_NEAR_THRESHOLD if args.near_threshold is None else args.near_threshold
    if not -1 <= threshold <= 32:
        raise invalid_value(
            "near_threshold",
            threshold,
            "an integer from 0 to 32 (bits of 64), or -1 for no near-duplicate search",
        )
    if args.group_by is not None:
        check_group_by(args.group_by)
    if args.out is not None and not args.labels:
        raise invalid_value("out", args.out, "a folder for --labels' files; add --labels")
    scanned = scan_folder(args.data)
    out_dir = label_out_dir(args.out, scanned.root) if args.labels else None
    splits = None if args.run is None else _run_splits(args.run, scanned.root)
    report = diagnose(scanned, threshold, splits=splits, group_by=args.group_by, progress=True)
    summary = report.to_dict()
    labels_line = None
    if out_dir is not None:
        summary["label_issues"], labels_line = run_label_doctor(scanned, out_dir)
    if args.json is not None:
        try:
            Path(args.json).write_text(
                json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        except OSError as exc:
            raise invalid_value(
                "json", str(args.json), f"a writable file path ({exc.strerror})"
            ) from None
    print(report.format(), flush=True)
    if labels_line is not None:
        print(labels_line, flush=True)
    findings = report.gate_findings() if args.strict else []
    if findings:
        print(f"imgclf: doctor --strict: {'; '.join(findings)}", file=sys.stderr)
        return EXIT_PROBLEM
    return 0
