"""Decide once, before any training, which image is train, val or test — and write it down.

The split is stratified (each class keeps its proportions) and seeded, computed from the sorted file
list, so the same folder and seed always give the same manifest. The manifest (``split.csv``) is
the only place the split lives: training, model selection and testing all read it, which is what
keeps test images out of training (unlike ``take``/``skip`` on a reshuffled ``tf.data`` dataset).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Hashable, Mapping
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


def _members_by_class(data: ScannedData) -> list[list[ImageItem]]:
    return [
        sorted((i for i in data.items if i.label == label), key=lambda i: i.path)
        for label in range(len(data.classes))
    ]


def _check_size(name: str, n: int, n_val: int, n_test: int) -> None:
    if n_val == 0 or n - n_val - n_test < 1:
        raise DataError(
            f"class {name!r} has {n} usable image(s): too few to split into train, "
            "validation and test; "
            "add images or lower --val-fraction/--test-fraction"
        )


def assign_splits(
    data: ScannedData,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    groups: Mapping[str, Hashable] | None = None,
) -> list[ImageItem]:
    """Give every item a split. A pre-split layout is kept as given.

    ``groups`` maps an item's path to a group id: items sharing one (a patient, a slide, a cluster
    of duplicates) always land in the same split. Without groups, or when every group is a single
    image, the split is exactly the per-class stratified permutation (the same manifest as before
    groups).

    Args:
        data: the scanned data folder.
        val_fraction: the fraction of each class for validation.
        test_fraction: the fraction of each class for test.
        seed: seed of the permutation.
        groups: path → group id, or None (the default) for no groups.

    Raises:
        DataError: a class has too few images (or groups) to split, or a split would be empty.
    """
    if data.presplit:
        if not any(i.split == "val" for i in data.items):
            raise DataError(f"the val/ folder of {data.root!r} has no usable images")
        return list(data.items)
    rng = np.random.default_rng(seed)
    members_by_class = _members_by_class(data)
    if groups is not None:
        sizes = Counter(groups.get(i.path, ("", i.path)) for i in data.items)
        if any(n > 1 for n in sizes.values()):
            return _assign_grouped(data, members_by_class, val_fraction, test_fraction, rng, groups)
    out: list[ImageItem] = []
    for label, name in enumerate(data.classes):
        members = members_by_class[label]
        n_val, n_test = _split_counts(len(members), val_fraction, test_fraction)
        _check_size(name, len(members), n_val, n_test)
        order = rng.permutation(len(members))
        for rank, idx in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            out.append(replace(members[idx], split=split))
    return sorted(out, key=lambda i: (i.label, i.path))


def _assign_grouped(
    data: ScannedData,
    members_by_class: list[list[ImageItem]],
    val_fraction: float,
    test_fraction: float,
    rng: np.random.Generator,
    groups: Mapping[str, Hashable],
) -> list[ImageItem]:
    """Whole groups go to one split, stratified per class as closely as whole groups allow.

    Each group belongs to the class most of its images have (ties: the lowest label). Class by
    class, its groups are visited in a seeded random order, and each goes to the first of test, val
    that is still short of its target by at least half the group's size, else to train. For
    single-image groups this is exactly the ungrouped permutation split.
    """
    key = {i.path: groups.get(i.path, ("", i.path)) for i in data.items}
    by_group: dict[Hashable, list[ImageItem]] = {}
    for members in members_by_class:
        for item in members:
            by_group.setdefault(key[item.path], []).append(item)
    primary = _primary_labels(by_group)
    placed: dict[tuple[int, str], int] = Counter()
    split_of: dict[Hashable, str] = {}
    for label, name in enumerate(data.classes):
        n = len(members_by_class[label])
        n_val, n_test = _split_counts(n, val_fraction, test_fraction)
        _check_size(name, n, n_val, n_test)
        target = {"test": n_test, "val": n_val}
        own = [
            g
            for g in dict.fromkeys(key[i.path] for i in members_by_class[label])
            if primary[g] == label
        ]
        for idx in rng.permutation(len(own)):
            g = own[idx]
            size = sum(i.label == label for i in by_group[g])
            split = next(
                (s for s in ("test", "val") if placed[(label, s)] + size / 2 <= target[s]), "train"
            )
            split_of[g] = split
            for item in by_group[g]:
                placed[(item.label, split)] += 1
    out = [replace(item, split=split_of[key[item.path]]) for item in data.items]
    _check_grouped_splits(data.classes, members_by_class, placed, out)
    return sorted(out, key=lambda i: (i.label, i.path))


def _primary_labels(by_group: dict[Hashable, list[ImageItem]]) -> dict[Hashable, int]:
    """Each group's majority label; ties go to the lowest label."""
    primary: dict[Hashable, int] = {}
    for g, its in by_group.items():
        counts = Counter(i.label for i in its)
        top = max(counts.values())
        primary[g] = min(label for label, c in counts.items() if c == top)
    return primary


def _check_grouped_splits(
    classes: list[str],
    members_by_class: list[list[ImageItem]],
    placed: Mapping[tuple[int, str], int],
    out: list[ImageItem],
) -> None:
    """A DataError when whole groups left a class without training images, or no validation."""
    for label, name in enumerate(classes):
        if placed[(label, "train")] == 0:
            raise DataError(
                f"class {name!r}: all its {len(members_by_class[label])} image(s) are in "
                "groups placed in val/test (groups from --group-by or duplicate clusters stay "
                "whole); add images or groups, or lower --val-fraction/--test-fraction"
            )
    if not any(i.split == "val" for i in out):
        raise DataError(
            "no group could be placed in the validation split (groups from --group-by or "
            "duplicate clusters stay whole; `imgclf doctor` lists them); add images or groups, "
            "or raise --val-fraction"
        )


def write_manifest(path: Path, items: list[ImageItem], classes: list[str], root: str) -> None:
    """``split.csv``: path (relative to the data folder when inside it), label, split.

    Args:
        path: the manifest file to write.
        items: the items, each with its split.
        classes: the class names, indexed by label.
        root: the data folder.
    """
    base = Path(root)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        for item in items:
            p = Path(item.path)
            rel = p.relative_to(base) if p.is_relative_to(base) else p
            writer.writerow([rel.as_posix(), classes[item.label], item.split])


def read_manifest(
    path: Path, classes: list[str], root: str, split: str | None = None
) -> list[ImageItem]:
    """Read ``split.csv`` back into items (optionally only one split).

    Args:
        path: the manifest file.
        classes: the class names, indexed by label.
        root: the data folder that relative paths are joined to.
        split: keep only this split (``"train"``, ``"val"`` or ``"test"``); None (the default) keeps
        all.

    Raises:
        DataError: the manifest is missing.
    """
    if not path.is_file():
        raise DataError(f"split manifest {str(path)!r} is missing")
    index = {c: i for i, c in enumerate(classes)}
    items = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if split is not None and row["split"] != split:
                continue
            p = Path(row["path"])
            items.append(
                ImageItem(
                    str(p if p.is_absolute() else Path(root) / p), index[row["label"]], row["split"]
                )
            )
    return items
