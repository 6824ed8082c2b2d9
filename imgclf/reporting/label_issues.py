"""The label-issue gallery: images whose label is likely wrong (``imgclf doctor --labels``,
:mod:`imgclf.training.label_issues`), each with its given and suggested label and its score, read
from ``label_issues.csv``. Shown as a section of a run's report when the run folder holds that file,
and as the page ``label_issues.html`` that the doctor writes beside it (the report's template, this
section alone)."""

from __future__ import annotations

import csv
from pathlib import Path

from imgclf.constants import LABEL_ISSUE_MODEL
from imgclf.data.decode import load_image
from imgclf.reporting.style import array_data_uri
from imgclf.reporting.templating import render

__all__ = [
    "LABEL_ISSUES_CSV",
    "LABEL_ISSUES_PAGE",
    "MAX_LABEL_ISSUES",
    "label_issues_section",
    "label_issues_page",
]

LABEL_ISSUES_CSV = "label_issues.csv"
LABEL_ISSUES_PAGE = "label_issues.html"
MAX_LABEL_ISSUES = 120  # most likely first; label_issues.csv holds them all
THUMBNAIL = 112  # px


def _thumbnail(path: str, size: int) -> str | None:
    try:
        return array_data_uri(load_image(path, size))
    except Exception:  # noqa: BLE001  (a file gone or unreadable: the row without its picture)
        return None


def label_issues_section(csv_path: str | Path, image_size: int = THUMBNAIL) -> dict | None:
    """The section's data from ``label_issues.csv`` (None when there is no such file).

    Args:
        csv_path: the CSV (columns path, given_label, suggested_label, score; most likely first).
        image_size: the largest thumbnail side (at most 112 px).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        return None
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    size = min(image_size, THUMBNAIL)
    gallery = [
        {
            "path": r["path"],
            "name": Path(r["path"]).name,
            "given": r["given_label"],
            "suggested": r["suggested_label"],
            "score": float(r["score"]),
            "thumb": _thumbnail(r["path"], size),
        }
        for r in rows[:MAX_LABEL_ISSUES]
    ]
    return {"gallery": gallery, "total": len(rows), "cap": MAX_LABEL_ISSUES, "checked": None}


def label_issues_page(
    csv_path: str | Path,
    title: str,
    classes: list[str],
    summary: str,
    checked: int,
    image_size: int,
) -> str:
    """The HTML of ``label_issues.html``: the report's page with this section alone.

    Args:
        csv_path: the label_issues.csv it shows.
        title: the page's title (the data folder).
        classes: class names.
        summary: how the issues were found (shown under the title).
        checked: how many images were checked.
        image_size: the input size the features were computed at.
    """
    section = label_issues_section(csv_path) or {"gallery": [], "total": 0, "cap": 0}
    return render(
        "report.html.j2",
        title=f"label issues: {title}",
        subtitle=summary,
        sections=("label_issues",),
        classes=classes,
        model_name=f"{LABEL_ISSUE_MODEL} features + logistic regression",
        image_size=image_size,
        label_issues={**section, "checked": checked},
    )
