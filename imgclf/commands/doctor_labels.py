"""``imgclf doctor --labels``: images whose label is likely wrong
(:mod:`imgclf.training.label_issues`), written as label_issues.csv and label_issues.html into
``--out``, never into DATA."""

from __future__ import annotations

from pathlib import Path

from imgclf.constants import LABEL_ISSUE_OUT
from imgclf.data.scan import ScannedData
from imgclf.errors import invalid_value

__all__ = ["label_out_dir", "run_label_doctor"]


def label_out_dir(out: str | None, root: str) -> Path:
    """The folder for --labels' files: ``out`` (default ``./doctor``), refused inside DATA.

    Args:
        out: ``--out`` as given, or None.
        root: the data folder.
    """
    folder = Path(LABEL_ISSUE_OUT if out is None else out).expanduser()
    resolved, data = folder.resolve(), Path(root).resolve()
    if resolved == data or data in resolved.parents:
        raise invalid_value(
            "out", str(folder), f"a folder outside the data folder {root!r} (DATA is never written)"
        )
    if resolved.exists() and not resolved.is_dir():
        raise invalid_value("out", str(folder), "a folder (this is a file)")
    return folder


def run_label_doctor(scanned: ScannedData, out_dir: Path) -> tuple[dict, str]:
    """Find the label issues of ``scanned``, write label_issues.csv and label_issues.html into
    ``out_dir``; returns (a summary for --json, the line to print).

    Args:
        scanned: the scanned data folder (all its images, every split).
        out_dir: the folder to write into (created if needed).
    """
    from imgclf.atomic import write_failure, write_text_atomic
    from imgclf.reporting.label_issues import (
        LABEL_ISSUES_CSV,
        LABEL_ISSUES_PAGE,
        label_issues_page,
    )
    from imgclf.training.label_issues import find_label_issues

    found = find_label_issues(scanned.items, scanned.classes, progress=True)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failure(out_dir, exc) from None
    csv_path = found.write_csv(out_dir / LABEL_ISSUES_CSV)
    page = out_dir / LABEL_ISSUES_PAGE
    html = label_issues_page(
        csv_path, scanned.root, scanned.classes, found.how, found.checked, found.image_size
    )
    write_text_atomic(page, html)
    n = len(found.issues)
    line = (
        f"label issues: {n} of {found.checked} images likely mislabelled ({found.how}); "
        f"list: {csv_path}; gallery: {page}"
    )
    return {**found.to_dict(), "csv": str(csv_path), "gallery": str(page)}, line
