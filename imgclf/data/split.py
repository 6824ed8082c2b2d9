"""Decide once, before any training, which image is train, val or test — and write it down.

The split is stratified (each class keeps its proportions) and seeded, computed from the sorted file
list, so the same folder and seed always give the same manifest. The manifest (``split.csv``) is
the only place the split lives: training, model selection and testing all read it, which is what
keeps test images out of training (unlike ``take``/``skip`` on a reshuffled ``tf.data`` dataset).
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np

from imgclf.data.scan import ImageItem, ScannedData
from imgclf.errors import DataError

__all__ = ["SPLITS", "assign_splits", "write_manifest", "read_manifest"]

SPLITS = ("train", "val", "test")


def _split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    if test_fraction > 0 and n_test == 0 and n >= 3:
        n_test = 1
    if n_val == 0 and n >= 2:
        n_val = 1
    return n_val, n_test


def assign_splits(data: ScannedData, val_fraction: float, test_fraction: float, seed: int) -> list[ImageItem]:
    """Give every item a split. A pre-split layout is kept as given."""
    if data.presplit:
        if not any(i.split == "val" for i in data.items):
            raise DataError(f"the val/ folder of {data.root!r} has no usable images")
        return list(data.items)
    rng = np.random.default_rng(seed)
    out: list[ImageItem] = []
    for label, name in enumerate(data.classes):
        members = sorted((i for i in data.items if i.label == label), key=lambda i: i.path)
        n_val, n_test = _split_counts(len(members), val_fraction, test_fraction)
        if n_val == 0 or len(members) - n_val - n_test < 1:
            raise DataError(
                f"class {name!r} has {len(members)} usable image(s): too few to split into train, validation and test; "
                "add images or lower --val-fraction/--test-fraction"
            )
        order = rng.permutation(len(members))
        for rank, idx in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            out.append(replace(members[idx], split=split))
    return sorted(out, key=lambda i: (i.label, i.path))


def write_manifest(path: Path, items: list[ImageItem], classes: list[str], root: str) -> None:
    """``split.csv``: path (relative to the data folder when inside it), label, split."""
    base = Path(root)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        for item in items:
            p = Path(item.path)
            rel = p.relative_to(base) if p.is_relative_to(base) else p
            writer.writerow([rel.as_posix(), classes[item.label], item.split])


def read_manifest(path: Path, classes: list[str], root: str, split: str | None = None) -> list[ImageItem]:
    """Read ``split.csv`` back into items (optionally only one split)."""
    if not path.is_file():
        raise DataError(f"split manifest {str(path)!r} is missing")
    index = {c: i for i, c in enumerate(classes)}
    items = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if split is not None and row["split"] != split:
                continue
            p = Path(row["path"])
            items.append(ImageItem(str(p if p.is_absolute() else Path(root) / p), index[row["label"]], row["split"]))
    return items
