"""The dataset doctor: everything wrong with a data folder, found before training and told plainly.

One pass reads every file once (in a thread pool; Pillow and hashlib release the GIL) and records:
its SHA-256, a full decode (JPEGs at reduced scale with ``Image.draft``: the whole entropy-coded stream
is still read, so a truncated file is caught), the format behind the extension, size and colour mode,
and a perceptual hash. From that the report lists

* **unusable files**, each with its reason (the scan's header checks plus "cannot decode"): skipped, never touched;
* **warnings** per file: an extension that lies about the format (the file is still used);
* **duplicates**: exact (same bytes) and near (pHash), within a class, across classes (a label
  conflict) and across train/val/test (leakage);
* **class balance**: counts, warnings for heavy imbalance or tiny classes, suggested class weights;
* **sizes, aspect ratios and colour modes**, with a warning when they vary wildly.

``imgclf doctor DATA`` prints it; ``imgclf train`` prints one line per finding, keeps duplicate
clusters (and ``--group-by`` groups) whole in the split, and saves the full report in data_report.json.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.data.duplicates import DEFAULT_NEAR_THRESHOLD, duplicate_clusters, phash
from imgclf.data.scan import ImageItem, ScannedData, Skipped

__all__ = [
    "FileFacts",
    "DoctorReport",
    "inspect_file",
    "diagnose",
    "class_weights",
    "prepare_training_data",
    "EXTENSION_FORMATS",
]

EXTENSION_FORMATS = {
    ".jpg": {"JPEG", "MPO"},
    ".jpeg": {"JPEG", "MPO"},
    ".jpe": {"JPEG", "MPO"},
    ".png": {"PNG"},
    ".bmp": {"BMP"},
    ".gif": {"GIF"},
    ".webp": {"WEBP"},
    ".tif": {"TIFF"},
    ".tiff": {"TIFF"},
}
IMBALANCE_RATIO = 10.0  # largest / smallest class at or above this is "heavy"
TINY_CLASS = 10  # fewer usable images than this is "tiny"
SIZE_SPREAD = 4.0  # largest / smallest shorter side at or above this "varies wildly"
ASPECT_SPREAD = 2.0  # widest / narrowest aspect ratio at or above this "varies wildly"
_LIST_LIMIT = 20  # lines per section in the terminal report (the JSON has everything)


@dataclass(frozen=True)
class FileFacts:
    """What one read of a file tells: its hash, format, size, mode, perceptual hash, and any problem."""

    path: str
    digest: str = ""
    format: str | None = None
    mode: str | None = None
    width: int = 0
    height: int = 0
    phash: int | None = None
    error: str | None = None  # the file cannot be used
    warning: str | None = None  # usable, but something is off


def inspect_file(path: str) -> FileFacts:
    """Read ``path`` once: hash its bytes, decode it fully (JPEG at reduced scale), hash its pixels."""
    from PIL import Image, ImageOps

    from imgclf.data.decode import to_rgb

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return FileFacts(path, error=f"cannot read: {exc}".splitlines()[0])
    digest = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, mode, (w, h) = im.format, im.mode, im.size
                if fmt in ("JPEG", "MPO"):
                    im.draft("RGB", (64, 64))  # DCT-domain downscale: every byte is still decoded
                im.load()
                small = to_rgb(ImageOps.exif_transpose(im))
                code = phash(small)
    except Exception as exc:  # any decoder failure means "cannot use this file"
        return FileFacts(path, digest, error=f"cannot decode: {exc}".splitlines()[0])
    ext = Path(path).suffix.lower()
    warning = None
    if ext in EXTENSION_FORMATS and fmt not in EXTENSION_FORMATS[ext]:
        warning = f"extension {ext} but content is {fmt} (still used; consider renaming)"
    return FileFacts(path, digest, fmt, mode, w, h, code, None, warning)


def inspect_files(paths: Sequence[str]) -> list[FileFacts]:
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2)) as pool:
        return list(pool.map(inspect_file, paths))


def class_weights(labels: Iterable[int], num_classes: int) -> dict[int, float]:
    """Inverse class frequency, normalised to mean 1 over the classes present (Keras ``class_weight``)."""
    counts = np.bincount(np.asarray(list(labels), dtype=np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    inv = np.zeros(num_classes)
    inv[present] = 1.0 / counts[present]
    inv[present] /= inv[present].mean()
    return {c: round(float(inv[c]), 4) for c in range(num_classes) if present[c]}


def _stats(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"min": float(arr.min()), "median": float(np.median(arr)), "max": float(arr.max())}


@dataclass
class DoctorReport:
    """The doctor's findings for one data folder. ``usable`` is the data without undecodable files."""

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
    train_class_weights: dict[int, float] | None = None  # set by prepare_training_data with class_weight="auto"

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
            splits = sorted({self.splits[self.facts[i].path] for i in members if self.facts[i].path in self.splits})
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
        """``--group-by`` groups found in more than one split (only possible with a pre-split layout)."""
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
                f"heavy class imbalance: {big!r} has {max(n)} images, {small!r} {min(n)} (ratio {ratio:.0f}:1); "
                "consider --class-weight auto, or more images of the small class"
            )
        for name, count in counts.items():
            if count < TINY_CLASS:
                warnings_.append(f"tiny class: {name!r} has {count} usable image(s); its test metrics will be noisy")
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
                f"aspect ratios vary wildly: from {min(aspect):.2f} to {max(aspect):.2f} (width/height); "
                "every image is resized to a square"
            )
        grey = sum(f.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F") for f in ok)
        if 0 < grey < len(ok):
            warnings_.append(f"colour modes are mixed: {grey} grayscale and {len(ok) - grey} colour image(s); all become RGB")
        out["warnings"] = warnings_
        return out

    # ------------------------------------------------------------------ output

    def to_dict(self) -> dict[str, Any]:
        dups = self.duplicate_rows()
        out = {
            "root": self.root,
            "classes": self.classes,
            "files": len(self.facts) + sum(1 for s in self.unusable if not s.reason.startswith("cannot decode")),
            "usable": len(self.usable.items),
            "unusable": [{"path": self.rel(s.path), "reason": s.reason} for s in self.unusable],
            "warnings": [{"path": self.rel(f.path), "warning": f.warning} for f in self.facts if f.warning],
            "duplicates": {
                "near_threshold": self.near_threshold,
                "exact_clusters": sum(d["kind"] == "exact" for d in dups),
                "near_clusters": sum(d["kind"] == "near" for d in dups),
                "across_classes": sum(d["across_classes"] for d in dups),
                "across_splits": sum(d["across_splits"] for d in dups),
                "clusters": dups,
            },
            "balance": self.balance(),
            "sizes": self.sizes(),
        }
        if self.groups:
            out["groups"] = {
                "matched_images": len(self.groups),
                "groups": len(set(self.groups.values())),
                "across_splits": self.group_leaks(),
            }
        if self.train_class_weights is not None:
            out["train_class_weights"] = {self.classes[c]: w for c, w in self.train_class_weights.items()}
        return out

    def summary(self) -> list[str]:
        """One line per kind of finding (what ``train`` prints); empty when all is well."""
        d = self.to_dict()
        lines = []
        if d["unusable"]:
            lines.append(f"doctor: {len(d['unusable'])} unusable file(s) skipped, never touched (see data_report.json)")
        if d["warnings"]:
            lines.append(f"doctor: {len(d['warnings'])} file(s) whose extension does not match the content (still used)")
        dup = d["duplicates"]
        if dup["clusters"]:
            extra = []
            if dup["across_classes"]:
                extra.append(f"{dup['across_classes']} across classes: label conflicts")
            if dup["across_splits"]:
                extra.append(f"{dup['across_splits']} across splits: LEAKAGE")
            lines.append(
                f"doctor: {dup['exact_clusters']} exact and {dup['near_clusters']} near-duplicate cluster(s)"
                + (f" ({'; '.join(extra)})" if extra else "")
            )
        for w in d["balance"]["warnings"] + d["sizes"]["warnings"]:
            lines.append(f"doctor: {w}")
        for leak in d.get("groups", {}).get("across_splits", []):
            lines.append(f"doctor: group {leak['group']!r} is in {', '.join(leak['splits'])}: LEAKAGE")
        return lines

    def format(self) -> str:
        """The full terminal report."""
        d = self.to_dict()
        out = [
            f"imgclf doctor: {self.root}",
            f"  {d['files']} file(s), {d['usable']} usable, {len(self.classes)} classes",
        ]

        def listing(title: str, rows: list[str], count: bool = True) -> None:
            out.append("")
            out.append(f"{title} ({len(rows)})" if rows and count else f"{title}" if rows else f"{title}: none")
            out.extend(f"  {r}" for r in rows[:_LIST_LIMIT])
            if len(rows) > _LIST_LIMIT:
                out.append(f"  … and {len(rows) - _LIST_LIMIT} more (all of them in --json)")

        listing("Unusable files — skipped, never touched", [f"{r['path']}: {r['reason']}" for r in d["unusable"]])
        listing("Warnings", [f"{r['path']}: {r['warning']}" for r in d["warnings"]])
        dup = d["duplicates"]
        rows = []
        for c in dup["clusters"]:
            where = []
            if c["across_classes"]:
                where.append(f"across classes {', '.join(c['classes'])}: label conflict")
            else:
                where.append(f"within class {c['classes'][0]}")
            if c["across_splits"]:
                where.append(f"across splits {'/'.join(c['splits'])}: LEAKAGE")
            rows.append(f"{c['kind']}, {'; '.join(where)}: {', '.join(c['paths'])}")
        listing(
            f"Duplicates — {dup['exact_clusters']} exact, {dup['near_clusters']} near "
            f"(pHash distance <= {dup['near_threshold']} of 64 bits)",
            rows,
            count=False,
        )
        for leak in d.get("groups", {}).get("across_splits", []):
            out.append(f"  group {leak['group']!r} is in {', '.join(leak['splits'])}: LEAKAGE")
        bal = d["balance"]
        out += ["", f"Class balance (largest/smallest {bal['imbalance_ratio']:g}:1)"]
        width = max(len(c) for c in self.classes)
        for name, count in bal["counts"].items():
            weight = bal["suggested_class_weights"].get(name)
            out.append(f"  {name:<{width}}  {count:>6}   weight {weight if weight is not None else '-'}")
        out += [f"  ! {w}" for w in bal["warnings"]]
        sz = d["sizes"]
        if "width" in sz:
            out += [
                "",
                "Sizes and modes",
                f"  width  {sz['width']['min']:g}–{sz['width']['max']:g} px (median {sz['width']['median']:g})",
                f"  height {sz['height']['min']:g}–{sz['height']['max']:g} px (median {sz['height']['median']:g})",
                f"  aspect {sz['aspect_ratio']['min']:g}–{sz['aspect_ratio']['max']:g} (width/height)",
                "  modes  " + ", ".join(f"{k} {v}" for k, v in sz["modes"].items()),
                "  formats " + ", ".join(f"{k} {v}" for k, v in sz["formats"].items()),
            ]
            out += [f"  ! {w}" for w in sz["warnings"]]
        return "\n".join(out)


def diagnose(
    data: ScannedData,
    near_threshold: int = DEFAULT_NEAR_THRESHOLD,
    splits: Mapping[str, str] | None = None,
    group_by: str | None = None,
) -> DoctorReport:
    """Examine every scanned image of ``data`` (see the module docstring). Touches no file."""
    from imgclf.data.groups import group_labels

    facts = inspect_files([i.path for i in data.items])
    bad = [Skipped(f.path, f.error) for f in facts if f.error]
    failed = {s.path for s in bad}
    usable = replace(
        data,
        items=[i for i in data.items if i.path not in failed],
        skipped=list(data.skipped) + bad,
    )
    labels = [i.label for i in data.items]
    clusters = duplicate_clusters([f.digest for f in facts], [f.phash for f in facts], near_threshold)
    report = DoctorReport(
        root=data.root,
        classes=list(data.classes),
        usable=usable,
        facts=facts,
        labels=labels,
        unusable=list(data.skipped) + bad,
        near_threshold=near_threshold,
        clusters=clusters,
    )
    report.set_splits(data.items)
    if splits:
        report.splits.update({p: s for p, s in splits.items() if s})
    if group_by:
        report.groups = group_labels([i.path for i in usable.items], data.root, group_by)
    return report


def prepare_training_data(data: ScannedData, cfg: Any, verbose: int = 1) -> tuple[ScannedData, list[ImageItem], DoctorReport]:
    """What ``train`` does before its split: diagnose, drop undecodable files, split keeping groups whole.

    Returns the usable data, the items with their splits, and the report (with the train split's
    class weights when ``cfg.class_weight == "auto"``). Prints one line per finding when ``verbose``.
    """
    from imgclf.data.groups import merge_groups
    from imgclf.data.split import assign_splits

    report = diagnose(data, group_by=getattr(cfg, "group_by", None))
    usable = report.usable
    paths = [i.path for i in usable.items]
    clusters = []
    if getattr(cfg, "duplicates_together", True):
        clusters = [[report.facts[i].path for i in members] for _, members in report.clusters]
    groups = merge_groups(paths, report.groups, clusters) if (report.groups or clusters) else None
    items = assign_splits(usable, cfg.val_fraction, cfg.test_fraction, cfg.seed, groups)
    report.set_splits(items)
    if getattr(cfg, "class_weight", "none") == "auto":
        report.train_class_weights = class_weights((i.label for i in items if i.split == "train"), len(usable.classes))
    if verbose:
        for line in report.summary():
            print(line, flush=True)
        if report.train_class_weights is not None:
            shown = ", ".join(f"{usable.classes[c]} {w:g}" for c, w in report.train_class_weights.items())
            print(f"doctor: class weights (train split, --class-weight auto): {shown}", flush=True)
    return usable, items, report


def run_doctor(
    data: str | Path,
    near_threshold: int | None = None,
    group_by: str | None = None,
    run: str | Path | None = None,
    json_path: str | Path | None = None,
) -> str:
    """``imgclf doctor``: scan ``data``, diagnose it, optionally save JSON; returns the terminal report."""
    import json

    from imgclf.data.scan import scan_folder
    from imgclf.errors import DataError, invalid_value

    threshold = DEFAULT_NEAR_THRESHOLD if near_threshold is None else near_threshold
    if not -1 <= threshold <= 32:
        raise invalid_value("near_threshold", threshold, "an integer from 0 to 32 (bits of 64), or -1 for no near-duplicate search")
    if group_by is not None:
        from imgclf.data.groups import check_group_by

        check_group_by(group_by)
    scanned = scan_folder(data)
    splits = None
    if run is not None:
        from imgclf.data.split import read_manifest

        run_dir = Path(run)
        classes_file = run_dir / "classes.json"
        if not classes_file.is_file():
            raise DataError(f"run folder {str(run)!r} has no classes.json; expected a folder made by `imgclf train`")
        classes = json.loads(classes_file.read_text(encoding="utf-8"))
        splits = {i.path: i.split for i in read_manifest(run_dir / "split.csv", classes, scanned.root)}
    report = diagnose(scanned, threshold, splits=splits, group_by=group_by)
    if json_path is not None:
        try:
            Path(json_path).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as exc:
            raise invalid_value("json", str(json_path), f"a writable file path ({exc.strerror})") from None
    return report.format()
