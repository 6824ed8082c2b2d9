"""Find the classes and images of a data folder and check each file's header, touching nothing.

Two layouts are accepted:

* ``DATA/<class>/<images>`` — split by imgclf (see :mod:`imgclf.data.split`);
* ``DATA/train/<class>/…`` with ``val/`` or ``validation/`` and optional ``test/`` — used as given.

Class names are the folder names, sorted, so the order is stable across machines and runs.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from imgclf.errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "ImageItem", "Skipped", "ScannedData", "scan_folder", "check_header"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "GIF", "WEBP", "TIFF"})
SPLIT_DIRS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
MIN_SIDE = 8
MAX_PIXELS = 178_956_970  # Pillow's own decompression-bomb limit (2 × Image.MAX_IMAGE_PIXELS default)


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

    def counts(self) -> dict[str, int]:
        out = {c: 0 for c in self.classes}
        for item in self.items:
            out[self.classes[item.label]] += 1
        return out


def _visible(p: Path) -> bool:
    return not p.name.startswith(".") and not p.name.startswith("__")


def _class_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)


def _files_under(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return found


def check_header(path: str) -> tuple[str | None, int, int]:
    """Open ``path``'s header (no full decode). Returns (reason it is unusable or None, width, height)."""
    from PIL import Image, UnidentifiedImageError

    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)", 0, 0
        with Image.open(path) as im:
            fmt, (w, h) = im.format, im.size
    except Image.DecompressionBombError as exc:
        return f"decompression bomb: {exc}".split(" could be")[0].rstrip(", "), 0, 0
    except UnidentifiedImageError:
        return "not an image (unrecognised content)", 0, 0
    except OSError as exc:
        return f"cannot read: {exc}", 0, 0
    if fmt not in SUPPORTED_FORMATS:
        return f"unsupported image format {fmt}", w, h
    if w * h > MAX_PIXELS:
        return f"decompression bomb: {w}x{h} pixels", w, h
    if min(w, h) < MIN_SIDE:
        return f"too small: {w}x{h} pixels (minimum side {MIN_SIDE})", w, h
    return None, w, h


def _checked(candidates: list[tuple[Path, int, str | None]]) -> tuple[list[ImageItem], list[Skipped]]:
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 4)) as pool:
        results = list(pool.map(lambda c: check_header(str(c[0])), candidates))
    items, skipped = [], []
    for (path, label, split), (reason, w, h) in zip(candidates, results):
        if reason:
            skipped.append(Skipped(str(path), reason))
        else:
            items.append(ImageItem(str(path), label, split, w, h))
    return items, skipped


def _collect(class_dirs: list[Path], classes: list[str], split: str | None):
    candidates, ignored = [], []
    for d in class_dirs:
        label = classes.index(d.name)
        for f in _files_under(d):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                candidates.append((f, label, split))
            else:
                ignored.append(Skipped(str(f), f"not an image file extension ({f.suffix or 'none'})"))
    return candidates, ignored


def scan_folder(root: str | Path, classes: list[str] | None = None) -> ScannedData:
    """Scan ``root`` and check every image header.

    ``classes`` fixes the class list (evaluating a run on another folder): a folder naming a class
    outside it is an error that names the class. ``root`` may also be NumPy arrays (a ``.npz``, or a
    folder with ``features.npy`` + ``target.npy``): see :mod:`imgclf.data.arrays`.
    """
    from imgclf.data.arrays import array_source, materialise_arrays

    source = array_source(root)
    if source is not None:
        folder, names = materialise_arrays(source)
        return _scan(folder, str(folder), names if classes is None else classes, training=classes is None)
    return _scan(Path(root).expanduser(), root, classes, training=classes is None)


def _scan(root_path: Path, root: str | Path, classes: list[str] | None, training: bool) -> ScannedData:
    if not root_path.exists():
        raise DataError(f"data folder {str(root)!r} does not exist")
    if not root_path.is_dir():
        raise DataError(f"data path {str(root)!r} is not a folder; expected a folder of class sub-folders")
    subdirs = _class_dirs(root_path)
    split_dirs = {SPLIT_DIRS[d.name.lower()]: d for d in subdirs if d.name.lower() in SPLIT_DIRS}
    presplit = "train" in split_dirs
    if presplit:
        if "val" not in split_dirs:
            raise DataError(
                f"{str(root)!r} has a train/ folder but no val/ or validation/ folder; add one, or put the class "
                "folders directly in the data folder to let imgclf split them"
            )
        per_split = {s: _class_dirs(d) for s, d in split_dirs.items()}
        found = sorted({d.name for dirs in per_split.values() for d in dirs})
        train_names = [d.name for d in per_split["train"]]
    else:
        per_split = {None: subdirs}
        found = train_names = [d.name for d in subdirs]
    if not found:
        raise DataError(
            f"no class sub-folders in {str(root)!r}; expected {str(root)}/<class name>/<images> with one folder per class"
        )
    if training:
        classes = classes or train_names
        if len(classes) < 2:
            where = "train/ of " if presplit else ""
            raise DataError(
                f"{where}{str(root)!r} has only one class folder ({classes[0]!r}); a classifier needs at least two classes"
            )
    unknown = sorted(set(found) - set(classes))
    if unknown:
        allowed = "train/" if training else "the run's classes"
        raise DataError(f"class {unknown[0]!r} in {str(root)!r} is not one of {allowed}: {', '.join(classes)}")

    candidates, skipped = [], []
    for f in sorted(p for p in root_path.iterdir() if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS):
        skipped.append(Skipped(str(f), "not inside a class folder"))
    if presplit:
        for d in subdirs:
            if d.name.lower() not in SPLIT_DIRS:
                skipped.append(Skipped(str(d), "folder beside train/ and val/ is not a split; ignored"))
    for split, dirs in per_split.items():
        c, ignored = _collect(dirs, classes, split)
        candidates += c
        skipped += ignored
    items, bad = _checked(candidates)
    data = ScannedData(str(root_path), list(classes), items, skipped + bad, presplit)
    if training:
        empty = [c for c, n in data.counts().items() if n == 0]
        if empty:
            raise DataError(f"class folder {empty[0]!r} in {str(root)!r} has no usable images")
    if not items:
        raise DataError(f"no usable images in {str(root)!r}")
    return data
