"""Findings about a data folder's layout that the file-by-file scan cannot see.

* **Nested classes**: ``DATA/g1/{a,b}/``, ``DATA/g2/{c,d}/`` trains the classes ``g1``, ``g2``, each
  merging its sub-folders. That may be meant (``cat/2023/``, ``cat/2024/``) or not, so it is a
  warning that says how to choose, never a guess.
* **A class missing from a pre-split val/ or test/**: it would have no validation loss, or test
  metrics with support 0. A warning for val/; for test/ an error unless the user allows it.
* **A class folder named train/**: in ``DATA/{cat,dog,train}/`` the name makes the folder look
  pre-split; the error says so, instead of asking for a val/ folder the user never meant to have.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgclf.errors import DataError

__all__ = ["check_split_classes", "nested_classes_warning", "train_folder_error"]


def _visible(p: Path) -> bool:
    return not p.name.startswith((".", "__"))


def _has_images(folder: Path, extensions: frozenset[str]) -> bool:
    return any(p.is_file() and p.suffix.lower() in extensions for p in folder.iterdir())


def nested_classes_warning(class_dirs: Sequence[Path], extensions: frozenset[str]) -> str | None:
    """A warning when every class folder holds no images itself, only two or more sub-folders with
    images (the sub-folders look like the real classes); else None.

    Args:
        class_dirs: the folders that will become classes.
        extensions: the image file extensions.
    """
    inner: dict[str, list[str]] = {}
    for d in class_dirs:
        subs = sorted(p for p in d.iterdir() if p.is_dir() and _visible(p))
        if (
            _has_images(d, extensions)
            or len(subs) < 2
            or not all(_has_images(s, extensions) for s in subs)
        ):
            return None
        inner[d.name] = [s.name for s in subs]
    if len(inner) < 2:
        return None
    shown = "; ".join(
        f"{k}/: {', '.join(v[:4])}{', …' if len(v) > 4 else ''}" for k, v in inner.items()
    )
    first, sub = next(iter(inner.items()))
    return (
        f"every class folder holds only sub-folders ({shown}): imgclf trains the "
        f"{len(inner)} classes "
        f"{', '.join(inner)}, each merging its sub-folders. If the sub-folders are the "
        "classes, point imgclf at "
        f"a folder whose sub-folders they are (e.g. DATA/{first} for {', '.join(sub[:2])}, "
        "or a new folder of "
        f"symbolic links to each); if {', '.join(list(inner)[:2])} are the classes, "
        "nothing needs to change"
    )


def train_folder_error(
    root: str, train_dir: Path, siblings: Sequence[str], extensions: frozenset[str]
) -> DataError:
    """The error for a ``train/`` folder without ``val/``: what the folder looks like, and what to
    do.

    Args:
        root: the data folder as the user gave it.
        train_dir: its ``train`` folder.
        siblings: the names of the other visible folders beside it.
        extensions: the image file extensions.
    """
    holds_classes = any(p.is_dir() and _visible(p) for p in train_dir.iterdir())
    if _has_images(train_dir, extensions) or not holds_classes:
        others = ", ".join(siblings) or "no other folder"
        return DataError(
            f"{root!r} has a folder named {train_dir.name}/ beside {others}: it looks "
            "like a class named "
            f"{train_dir.name!r}, but a folder named train/ marks a pre-split dataset "
            "(train/ and val/ holding the "
            f"class folders). If {train_dir.name!r} is a class, rename that folder (e.g. "
            f"to '{train_dir.name}_'); if the "
            "data is pre-split, put every class folder inside train/ and add val/ (or "
            "valid/, validation/)"
        )
    return DataError(
        f"{root!r} is pre-split (it has train/) but has no val/, valid/ or validation/ "
        "folder; add one with the "
        "same class folders, or put the class folders directly in the data folder to let "
        "imgclf split them"
    )


def check_split_classes(data: Any, allow_missing_test: bool = False) -> list[str]:
    """Warnings for classes absent from a pre-split val/ or test/; a DataError when test/ exists and
    lacks a class, unless ``allow_missing_test``. Data split by imgclf is stratified: nothing to
    check.

    Args:
        data: the scanned data (a :class:`imgclf.data.scan.ScannedData`; not imported here, as scan
        imports this module). allow_missing_test: train anyway when test/ lacks a class (its test
        metrics have support 0).
    """
    if not data.presplit:
        return []
    present = {s: {i.label for i in data.items if i.split == s} for s in ("val", "test")}
    warnings, has_test = [], bool(present["test"])
    for split, labels in present.items():
        missing = [c for k, c in enumerate(data.classes) if k not in labels]
        if not missing or (split == "test" and not has_test):
            continue
        names = ", ".join(repr(c) for c in missing)
        if split == "val":
            warnings.append(
                f"class(es) {names} have no images in val/: their validation loss and "
                "accuracy are not measured"
            )
        elif not allow_missing_test:
            raise DataError(
                f"class(es) {names} have no images in test/ of {data.root!r}: their test "
                "metrics would have support 0; "
                "add test images of them, or pass --allow-missing-test-classes "
                "(allow_missing_test_classes=True) to train anyway"
            )
        else:
            warnings.append(
                f"class(es) {names} have no images in test/: their test metrics have support 0"
            )
    return warnings
