"""Find the classes and images of a data folder and check each file's header, touching nothing.

Two layouts are accepted:

* ``DATA/<class>/<images>`` — split by imgclf (see :mod:`imgclf.data.split`);
* ``DATA/train/<class>/…`` with ``val/``, ``valid/`` or ``validation/`` and optional ``test/`` —
  used as given.

Class names are the folder names, sorted, so the order is stable across machines and runs. Each
real file is used once (:mod:`imgclf.data.walk`): links to folders outside the data folder are
followed, a link back into it (``a/loop -> ..``) or to a folder already scanned is not, and a file
reached twice through a link counts once; each is reported in ``skipped``. A folder that cannot be
listed is reported, not dropped silently. Each file's header is checked
(:mod:`imgclf.data.header`). Layout findings (:mod:`imgclf.data.layout`) go to ``warnings``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from imgclf.data.formats import format_from_extension, unreadable_reason
from imgclf.data.header import MIN_SIDE, check_header
from imgclf.data.layout import nested_classes_warning, train_folder_error
from imgclf.data.walk import files_under, once
from imgclf.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MIN_SIDE",
    "ImageItem",
    "Skipped",
    "ScannedData",
    "scan_folder",
    "check_header",
    "one_line",
]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)
SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass(frozen=True)
class ImageItem:
    path: str
    label: int
    split: str | None = None  # given by a pre-split layout, else decided by the splitter
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass
class ScannedData:
    root: str
    classes: list[str]
    items: list[ImageItem]
    skipped: list[Skipped] = field(default_factory=list)
    presplit: bool = False
    warnings: list[str] = field(
        default_factory=list
    )  # about the layout as a whole (imgclf.data.layout)

    def counts(self) -> dict[str, int]:
        out = {c: 0 for c in self.classes}
        for item in self.items:
            out[self.classes[item.label]] += 1
        return out


def one_line(path: str) -> str:
    """``path`` fit for one line of output: control characters (a newline in a file name) escaped as
    ``\\n`` and the like; everything else, non-ASCII included, unchanged.

    Args:
        path: a file path.
    """
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in path)


def _visible(p: Path) -> bool:
    return not p.name.startswith(".") and not p.name.startswith("__")


def _class_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)


def _checked(
    candidates: list[tuple[Path, int, str | None]],
) -> tuple[list[ImageItem], list[Skipped]]:
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 4)) as pool:
        results = list(pool.map(lambda c: check_header(str(c[0])), candidates))
    items, skipped = [], []
    for (path, label, split), (reason, w, h) in zip(candidates, results, strict=True):
        if reason:
            skipped.append(Skipped(str(path), reason))
        else:
            items.append(ImageItem(str(path), label, split, w, h))
    return items, skipped


def _collect(
    class_dirs: list[Path], classes: list[str], split: str | None, root_real: str, seen: set[str]
):
    candidates, ignored = [], []
    for d in class_dirs:
        label = classes.index(d.name)
        files, skipped = files_under(d, root_real, seen)
        ignored += [Skipped(*row) for row in skipped]
        for f in files:
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                candidates.append((f, label, split))
            elif fmt := format_from_extension(f.suffix):
                ignored.append(Skipped(str(f), unreadable_reason(fmt)))
            else:
                ignored.append(
                    Skipped(str(f), f"not an image file extension ({f.suffix or 'none'})")
                )
    return candidates, ignored


def scan_folder(root: str | Path, classes: list[str] | None = None) -> ScannedData:
    """Scan ``root`` and check every image header.

    ``classes`` fixes the class list (evaluating a run on another folder): a folder naming a class
    outside it is an error that names the class. ``root`` may also be NumPy arrays (a ``.npz``, or a
    folder with ``features.npy`` + ``target.npy``): see :mod:`imgclf.data.arrays`.

    Args:
        root: the data folder, or NumPy arrays; classes: the run's class list, or None (default)
        when training.
    """
    from imgclf.data.arrays import array_source, materialise_arrays

    source = array_source(root)
    if source is not None:
        folder, names = materialise_arrays(source)
        return _scan(
            folder, str(folder), names if classes is None else classes, training=classes is None
        )
    return _scan(Path(root).expanduser(), root, classes, training=classes is None)


def _split_dirs(subdirs: list[Path], root: str) -> dict[str, Path]:
    """The split folders of a pre-split layout (``{"train": …, "val": …, "test": …}``), checked."""
    found: dict[str, list[Path]] = {}
    for d in subdirs:
        if d.name.lower() in SPLIT_DIRS:
            found.setdefault(SPLIT_DIRS[d.name.lower()], []).append(d)
    twice = next((dirs for dirs in found.values() if len(dirs) > 1), None)
    if twice and "train" in found:
        names = " and ".join(f"{d.name}/" for d in twice)
        raise DataError(f"{root!r} has both {names}, which mean the same split; keep one of them")
    split_dirs = {s: dirs[0] for s, dirs in found.items()}
    train = split_dirs.get("train")
    if train is not None and ("val" not in split_dirs or not _class_dirs(train)):
        siblings = [d.name for d in subdirs if d.name.lower() not in SPLIT_DIRS]
        raise train_folder_error(root, train, siblings, IMAGE_EXTENSIONS)
    return split_dirs


def _class_folders(
    root_path: Path, root: str, classes: list[str] | None, training: bool
) -> tuple[dict[str | None, list[Path]], list[str], list[Path]]:
    """``({split or None: class folders}, classes, the root's sub-folders)``, checked: the folder
    exists, holds class folders, two or more when training, and none outside ``classes``."""
    if not root_path.exists():
        raise DataError(f"data folder {root!r} does not exist")
    if not root_path.is_dir():
        raise DataError(
            f"data path {root!r} is not a folder; expected a folder of class sub-folders"
        )
    subdirs = _class_dirs(root_path)
    split_dirs = _split_dirs(subdirs, root)
    presplit = "train" in split_dirs
    if presplit:
        per_split = {s: _class_dirs(d) for s, d in split_dirs.items()}
        found = sorted({d.name for dirs in per_split.values() for d in dirs})
        train_names = [d.name for d in per_split["train"]]
    else:
        per_split = {None: subdirs}
        found = train_names = [d.name for d in subdirs]
    if not found:
        raise DataError(
            f"no class sub-folders in {root!r}; expected {root}/<class "
            "name>/<images> with one folder per class"
        )
    if training:
        classes = classes or train_names
        if len(classes) < 2:
            where = "train/ of " if presplit else ""
            raise DataError(
                f"{where}{root!r} has only one class folder ({classes[0]!r}); a "
                "classifier needs at least two classes"
            )
    unknown = sorted(set(found) - set(classes))
    if unknown:
        allowed = "train/" if training else "the run's classes"
        raise DataError(
            f"class {unknown[0]!r} in {root!r} is not one of {allowed}: {', '.join(classes)}"
        )
    return per_split, list(classes), subdirs


def _outside_classes(root_path: Path, subdirs: list[Path], presplit: bool) -> list[Skipped]:
    """Images beside the class folders, and folders beside train/ and val/ that are no split."""
    skipped = [
        Skipped(str(f), "not inside a class folder")
        for f in sorted(
            p
            for p in root_path.iterdir()
            if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS
        )
    ]
    if presplit:
        skipped += [
            Skipped(str(d), "folder beside train/ and val/ is not a split; ignored")
            for d in subdirs
            if d.name.lower() not in SPLIT_DIRS
        ]
    return skipped


def _scan(
    root_path: Path, root: str | Path, classes: list[str] | None, training: bool
) -> ScannedData:
    per_split, classes, subdirs = _class_folders(root_path, str(root), classes, training)
    presplit = None not in per_split
    skipped = _outside_classes(root_path, subdirs, presplit)
    candidates = []
    root_real, seen = os.path.realpath(root_path), set()
    for split, dirs in per_split.items():
        found, ignored = _collect(dirs, classes, split, root_real, seen)
        candidates += found
        skipped += ignored
    candidates, again = once(candidates)
    skipped += [Skipped(*row) for row in again]
    items, bad = _checked(candidates)
    data = ScannedData(str(root_path), classes, items, skipped + bad, presplit)
    if training:
        layout = per_split.get("train", per_split.get(None, []))
        nested = nested_classes_warning(layout, IMAGE_EXTENSIONS)
        data.warnings = [nested] if nested else []
        empty = [c for c, n in data.counts().items() if n == 0]
        if empty:
            raise DataError(f"class folder {empty[0]!r} in {str(root)!r} has no usable images")
    if not items:
        raise DataError(f"no usable images in {str(root)!r}")
    return data
