"""The dataset doctor: everything wrong with a data folder, found before training and told plainly.

One pass reads every file once (:mod:`imgclf.data.file_facts`) and records its SHA-256, a full
decode, the format behind the extension, size and colour mode, and a perceptual hash. From that the
report lists

* **unusable files**, each with its reason (the scan's header checks plus "cannot decode"): skipped,
  never touched;
* **warnings** per file: an extension that lies about the format (the file is still used);
* **duplicates**: exact (same bytes) and near (pHash), within a class, across classes (a label
  conflict) and across train/val/test (leakage);
* **class balance**: counts, warnings for heavy imbalance or tiny classes, suggested class weights;
* **sizes, aspect ratios and colour modes**, with a warning when they vary wildly.

This module holds the findings; :mod:`imgclf.data.doctor_text` renders them as text, ``to_dict`` as
JSON. ``imgclf doctor DATA`` (in :mod:`imgclf.cli`) prints them; ``imgclf train`` prepares its data
with them (:mod:`imgclf.data.prepare`) and saves the full report in data_report.json.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.data.balance import class_weights
from imgclf.data.doctor_sample import examine, sample_note
from imgclf.data.doctor_text import format_report, summary_lines
from imgclf.data.duplicates import DEFAULT_NEAR_THRESHOLD, duplicate_clusters, near_test
from imgclf.data.file_facts import FileFacts
from imgclf.data.groups import group_labels
from imgclf.data.scan import ImageItem, ScannedData, Skipped

__all__ = ["DoctorReport", "diagnose", "DEFAULT_NEAR_THRESHOLD"]

IMBALANCE_RATIO = 10.0  # largest / smallest class at or above this is "heavy"
TINY_CLASS = 10  # fewer usable images than this is "tiny"
SIZE_SPREAD = 4.0  # largest / smallest shorter side at or above this "varies wildly"
ASPECT_SPREAD = 2.0  # widest / narrowest aspect ratio at or above this "varies wildly"


def _stats(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"min": float(arr.min()), "median": float(np.median(arr)), "max": float(arr.max())}


@dataclass
class DoctorReport:
    """The doctor's findings for one data folder. ``usable`` is the data without undecodable
    files."""

    root: str
    classes: list[str]
    usable: ScannedData
    facts: list[FileFacts]
    labels: list[int]
    unusable: list[Skipped]
    near_threshold: int
    clusters: list[tuple[str, list[int]]]  # (kind, indices into facts / labels)
    splits: dict[str, str] = field(default_factory=dict)  # path -> split, when known
    groups: dict[str, str] = field(default_factory=dict)  # path -> --group-by name, when given
    train_class_weights: dict[int, float] | None = (
        None  # set by prepare_training_data with class_weight="auto"
    )
    layout: list[str] = field(
        default_factory=list
    )  # about the folder as a whole (imgclf.data.layout)
    # under a time limit: (images examined, images there are); None: every image was examined
    sampled: tuple[int, int] | None = None

    # ------------------------------------------------------------------ derived findings

    def rel(self, path: str) -> str:
        p, base = Path(path), Path(self.root)
        return (p.relative_to(base) if p.is_relative_to(base) else p).as_posix()

    def set_splits(self, items: Iterable[ImageItem]) -> None:
        self.splits = {i.path: i.split for i in items if i.split}

    def duplicate_rows(self) -> list[dict[str, Any]]:
        rows = []
        for kind, members in self.clusters:
            labels = sorted({self.labels[i] for i in members})
            splits = sorted(
                {
                    self.splits[self.facts[i].path]
                    for i in members
                    if self.facts[i].path in self.splits
                }
            )
            rows.append(
                {
                    "kind": kind,
                    "paths": [self.rel(self.facts[i].path) for i in members],
                    "classes": [self.classes[c] for c in labels],
                    "across_classes": len(labels) > 1,
                    "splits": splits,
                    "across_splits": len(splits) > 1,
                }
            )
        return rows

    def group_leaks(self) -> list[dict[str, Any]]:
        """``--group-by`` groups found in more than one split (only possible with a pre-split
        layout)."""
        seen: dict[str, set[str]] = {}
        for path, name in self.groups.items():
            if path in self.splits:
                seen.setdefault(name, set()).add(self.splits[path])
        return [{"group": g, "splits": sorted(s)} for g, s in sorted(seen.items()) if len(s) > 1]

    def balance(self) -> dict[str, Any]:
        counts = self.usable.counts()
        n = [counts[c] for c in self.classes]
        warnings_: list[str] = []
        nonzero = [x for x in n if x > 0]
        ratio = max(nonzero) / min(nonzero) if nonzero else 0.0
        if nonzero and ratio >= IMBALANCE_RATIO:
            big, small = self.classes[int(np.argmax(n))], self.classes[int(np.argmin(n))]
            warnings_.append(
                f"heavy class imbalance: {big!r} has {max(n)} images, {small!r} {min(n)} "
                f"(ratio {ratio:.0f}:1); "
                "consider --class-weight auto, or more images of the small class"
            )
        for name, count in counts.items():
            if count < TINY_CLASS:
                warnings_.append(
                    f"tiny class: {name!r} has {count} usable image(s); its test metrics "
                    "will be noisy"
                )
        weights = class_weights((i.label for i in self.usable.items), len(self.classes))
        return {
            "counts": counts,
            "imbalance_ratio": round(ratio, 2),
            "suggested_class_weights": {self.classes[c]: w for c, w in weights.items()},
            "warnings": warnings_,
        }

    def sizes(self) -> dict[str, Any]:
        ok = [f for f in self.facts if f.error is None]
        if not ok:
            return {"warnings": []}
        short = [min(f.width, f.height) for f in ok]
        aspect = [f.width / f.height for f in ok]
        out: dict[str, Any] = {
            "width": _stats([f.width for f in ok]),
            "height": _stats([f.height for f in ok]),
            "aspect_ratio": {k: round(v, 3) for k, v in _stats(aspect).items()},
            "modes": dict(Counter(f.mode for f in ok).most_common()),
            "formats": dict(Counter(f.format for f in ok).most_common()),
        }
        warnings_ = []
        if max(short) / min(short) >= SIZE_SPREAD:
            warnings_.append(
                f"image sizes vary wildly: shorter side from {min(short)} to {max(short)} px; "
                "small images are upscaled to the training size"
            )
        if max(aspect) / min(aspect) >= ASPECT_SPREAD:
            warnings_.append(
                f"aspect ratios vary wildly: from {min(aspect):.2f} to {max(aspect):.2f} "
                "(width/height); "
                "every image is resized to a square"
            )
        grey = sum(f.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F") for f in ok)
        if 0 < grey < len(ok):
            warnings_.append(
                f"colour modes are mixed: {grey} grayscale and {len(ok) - grey} colour "
                "image(s); all become RGB"
            )
        out["warnings"] = warnings_
        return out

    # ------------------------------------------------------------------ output

    def to_dict(self) -> dict[str, Any]:
        dups = self.duplicate_rows()
        examined = len(self.facts) if self.sampled is None else self.sampled[1]
        out = {
            "root": self.root,
            "classes": self.classes,
            "files": examined
            + sum(1 for s in self.unusable if not s.reason.startswith("cannot decode")),
            "usable": len(self.usable.items),
            "layout": list(self.layout),
            "unusable": [{"path": self.rel(s.path), "reason": s.reason} for s in self.unusable],
            "warnings": [
                {"path": self.rel(f.path), "warning": f.warning} for f in self.facts if f.warning
            ],
            "duplicates": {
                "near_threshold": self.near_threshold,
                "near_test": near_test([f.pixels for f in self.facts], self.near_threshold),
                "exact_clusters": sum(d["kind"] == "exact" for d in dups),
                "near_clusters": sum(d["kind"] == "near" for d in dups),
                "across_classes": sum(d["across_classes"] for d in dups),
                "across_splits": sum(d["across_splits"] for d in dups),
                "clusters": dups,
            },
            "balance": self.balance(),
            "sizes": self.sizes(),
        }
        if self.sampled is not None:
            out["sampled"] = {"examined": self.sampled[0], "of": self.sampled[1]}
        if self.groups:
            out["groups"] = {
                "matched_images": len(self.groups),
                "groups": len(set(self.groups.values())),
                "across_splits": self.group_leaks(),
            }
        if self.train_class_weights is not None:
            out["train_class_weights"] = {
                self.classes[c]: w for c, w in self.train_class_weights.items()
            }
        return out

    def gate_findings(self) -> list[str]:
        """What ``imgclf doctor --strict`` fails on: unusable image files, label conflicts
        (duplicates across classes) and leakage (duplicates or ``--group-by`` groups across splits);
        empty if
        none."""
        d = self.to_dict()
        # notes about the layout, not files that cannot be used: other files, links followed once
        ignored = (
            "not an image file extension",
            "not inside a class folder",
            "folder beside",
            "symbolic link",
            "folder already scanned",
            "same file as",
        )
        counts = {
            "unusable file(s)": sum(not u["reason"].startswith(ignored) for u in d["unusable"]),
            "duplicate(s) across classes (label conflict)": d["duplicates"]["across_classes"],
            "duplicate(s) across splits (leakage)": d["duplicates"]["across_splits"],
            "--group-by group(s) across splits (leakage)": len(
                d.get("groups", {}).get("across_splits", [])
            ),
        }
        return [f"{n} {what}" for what, n in counts.items() if n]

    def summary(self) -> list[str]:
        """One line per kind of finding (what ``train`` prints); empty when all is well; first,
        when only a sample was examined, how large it was."""
        lines = summary_lines(self.to_dict())
        return [sample_note(*self.sampled), *lines] if self.sampled else lines

    def format(self) -> str:
        """The full terminal report (what ``imgclf doctor`` prints)."""
        return format_report(self.to_dict())


def diagnose(
    data: ScannedData,
    near_threshold: int = DEFAULT_NEAR_THRESHOLD,
    splits: Mapping[str, str] | None = None,
    group_by: str | None = None,
    progress: bool = False,
    seconds: float | None = None,
    seed: int = 0,
) -> DoctorReport:
    """Examine every scanned image of ``data`` (see the module docstring). Touches no file.

    Args:
        data: a scanned folder (:func:`imgclf.data.scan.scan_folder`).
        near_threshold: near-duplicate distance in pHash bits of 64; -1 turns the search off.
        Defaults to 4. splits: path -> split of images whose split is known (a run's ``split.csv``),
        for leakage. group_by: ``--group-by`` regex or CSV: report groups found in more than one
        split. progress: show the progress of reading the files (:mod:`imgclf.progress`).
        seconds: only the random sample (``seed``) these seconds allow (``doctor_sample``).
    """
    examined, facts = examine(data.items, progress, seconds, seed)
    bad = [Skipped(f.path, f.error) for f in facts if f.error]
    failed = {s.path for s in bad}
    usable = replace(
        data,
        items=[i for i in data.items if i.path not in failed],
        skipped=list(data.skipped) + bad,
    )
    keys = [f.digest for f in facts], [f.phash for f in facts]
    report = DoctorReport(
        root=data.root,
        classes=list(data.classes),
        usable=usable,
        facts=facts,
        labels=[i.label for i in examined],
        unusable=list(data.skipped) + bad,
        near_threshold=near_threshold,
        clusters=duplicate_clusters(*keys, near_threshold, [f.pixels for f in facts]),
        layout=list(data.warnings),
        sampled=None if len(examined) == len(data.items) else (len(examined), len(data.items)),
    )
    report.set_splits(data.items)
    if splits:
        report.splits.update({p: s for p, s in splits.items() if s})
    if group_by:
        report.groups = group_labels([i.path for i in usable.items], data.root, group_by)
    return report
