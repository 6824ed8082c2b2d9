"""NumPy arrays as DATA: ``features.npy`` + ``target.npy`` (or ``X``/``y``) in a folder, or one
``.npz``; or pre-split, as Fashion-MNIST is often kept: ``train_features.npy`` +
``train_target.npy`` with ``test_…`` and optionally ``val_…`` / ``valid_…`` / ``validation_…``
(any pair name above).

Images kept as arrays are accepted without a second pipeline: the arrays are written once as PNG
files into a cache folder (``$IMGCLF_CACHE`` or ``~/.cache/imgclf``, under
``arrays/<content hash>/<name>/<class>/``) and from there on they are a folder like any other — the
same scan, doctor, split manifest, decoder and tf.data pipeline. The user's files are only read.

Accepted (checked in :mod:`imgclf.data.array_checks`): images ``(N, H, W)`` grayscale,
``(N, H, W, 1)`` or ``(N, H, W, 3)``; uint8, or floats in [0, 1] (scaled by 255) or [0, 255];
labels ``(N,)`` integers from 0 (or one-hot ``(N, K)``). Class names come from a ``classes`` /
``class_names`` / ``labels_names`` / ``label_names`` array when present, else ``"0"``, ``"1"``, …

Pre-split arrays become ``train/``, ``val/`` and ``test/`` folders, used as given: the test arrays
are the run's test split, never trained on. Without val arrays, a stratified, seeded 20 % of the
train arrays (the default ``val_fraction``) becomes ``val/``.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from imgclf.cache import build_once, part_folder
from imgclf.data.array_checks import as_labels, as_uint8_images, class_names
from imgclf.errors import DataError

__all__ = [
    "ARRAY_NAMES",
    "array_source",
    "load_arrays",
    "load_split_arrays",
    "materialise_arrays",
    "presplit_pairs",
]

ARRAY_NAMES = (("features", "target"), ("X", "y"), ("x", "y"), ("images", "labels"))
CLASS_NAME_KEYS = ("classes", "class_names", "labels_names", "label_names")
_DONE = ".complete"
SPLIT_PREFIXES = {
    "train": ("train_",),
    "val": ("val_", "valid_", "validation_"),
    "test": ("test_",),
}
HELD_OUT_VAL = 0.2  # without val arrays: this fraction of each class of the train arrays, seeded


def array_source(path: str | Path) -> Path | None:
    """``path`` itself if it is array DATA (a ``.npz`` file, or a folder with a features/target
    pair).

    Args:
        path: a file or folder given as DATA (``~`` is expanded).

    Returns:
        The expanded path, or None when it is not array data.
    """
    p = Path(path).expanduser()
    if p.is_file() and p.suffix.lower() == ".npz":
        return p
    if p.is_dir() and (_pair(p, "") or presplit_pairs(p)):
        return p
    return None


def _pair(folder: Path, prefix: str) -> tuple[Path, Path] | None:
    for a, b in ARRAY_NAMES:
        fa, fb = folder / f"{prefix}{a}.npy", folder / f"{prefix}{b}.npy"
        if fa.is_file() and fb.is_file():
            return fa, fb
    return None


def presplit_pairs(folder: str | Path) -> dict[str, tuple[Path, Path]] | None:
    """``{"train": (images, labels), "test": …, "val": …}`` for a folder of pre-split arrays
    (``train_features.npy`` + ``train_target.npy`` and so on); None when it holds no train pair.

    Args:
        folder: the data folder.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir() or _pair(folder, "train_") is None:
        return None
    out = {}
    for split, prefixes in SPLIT_PREFIXES.items():
        found = next((pair for pair in (_pair(folder, p) for p in prefixes) if pair), None)
        if found:
            out[split] = found
    return out


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read array file {str(path)!r}: {exc}".splitlines()[0]) from None


def _raw_arrays(src: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    if src.is_file():
        try:
            with np.load(src, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read array file {str(src)!r}: {exc}".splitlines()[0]) from None
        pair = next(((a, b) for a, b in ARRAY_NAMES if a in arrays and b in arrays), None)
        if pair is None:
            names = " / ".join(f"{a} + {b}" for a, b in ARRAY_NAMES)
            raise DataError(
                f"{str(src)!r} holds arrays {sorted(arrays)}; expected images and labels "
                f"named {names}"
            )
        names_arr = next((arrays[k] for k in CLASS_NAME_KEYS if k in arrays), None)
        return arrays[pair[0]], arrays[pair[1]], names_arr, src.stem
    a, b = next(
        (a, b)
        for a, b in ARRAY_NAMES
        if (src / f"{a}.npy").is_file() and (src / f"{b}.npy").is_file()
    )
    names_file = next(
        (src / f"{k}.npy" for k in CLASS_NAME_KEYS if (src / f"{k}.npy").is_file()), None
    )
    names_arr = _load_npy(names_file) if names_file else None
    return _load_npy(src / f"{a}.npy"), _load_npy(src / f"{b}.npy"), names_arr, src.resolve().name


def load_arrays(src: str | Path) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Validated ``(images uint8 (N,H,W) or (N,H,W,C), labels int (N,), class names, name)``.

    Args:
        src: a ``.npz`` file or a folder with a features/target ``.npy`` pair (see
        :func:`array_source`).

    Raises:
        DataError: the arrays cannot be read, are missing, empty, or have a shape, dtype or value
            range that is not images and integer labels, or class names that cannot name a folder.
    """
    src = Path(src).expanduser()
    x, y, names, name = _raw_arrays(src)
    where = repr(str(src))
    x = as_uint8_images(x, where)
    if len(x) == 0:
        raise DataError(f"{where} holds no images; expected at least one image per class")
    y = as_labels(y, len(x), where)
    classes = class_names(names, int(y.max()) + 1, where)
    return x, y, classes, name


def _held_out(y: np.ndarray, fraction: float, seed: int = 42) -> np.ndarray:
    """A stratified, seeded boolean mask of about ``fraction`` of each class (at least one image of
    a
    class with two or more)."""
    rng, mask = np.random.default_rng(seed), np.zeros(len(y), bool)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        n = min(len(members) - 1, max(1, round(fraction * len(members))))
        mask[rng.permutation(members)[:n]] = True
    return mask


def load_split_arrays(
    src: str | Path,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str], str]:
    """Validated pre-split arrays: ``({split: (images uint8, labels int)}, class names, name)``.

    Args:
        src: a folder that :func:`presplit_pairs` recognises.
    """
    src = Path(src).expanduser()
    parts = {}
    for split, (fx, fy) in (presplit_pairs(src) or {}).items():
        where = f"{str(fx)!r} + {fy.name!r}"
        x = as_uint8_images(_load_npy(fx), where)
        if len(x) == 0:
            raise DataError(f"{where} holds no images; expected at least one image per class")
        parts[split] = (x, as_labels(_load_npy(fy), len(x), where))
    if "val" not in parts:
        x, y = parts["train"]
        val = _held_out(y, HELD_OUT_VAL)
        parts["train"], parts["val"] = (x[~val], y[~val]), (x[val], y[val])
    names_file = next(
        (src / f"{k}.npy" for k in CLASS_NAME_KEYS if (src / f"{k}.npy").is_file()), None
    )
    n_classes = max(int(y.max()) for _, y in parts.values() if len(y)) + 1
    classes = class_names(_load_npy(names_file) if names_file else None, n_classes, repr(str(src)))
    return parts, classes, src.resolve().name


def _digest(src: Path) -> str:
    h = hashlib.blake2b(digest_size=10)
    files = (
        [src]
        if src.is_file()
        else sorted(p for p in src.iterdir() if p.suffix == ".npy" and p.is_file())
    )
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def materialise_arrays(src: str | Path) -> tuple[Path, list[str]]:
    """Write the arrays as PNGs into the cache (once per content) and return ``(folder, class
    names)``; pre-split arrays become ``train/``, ``val/`` and ``test/`` inside that folder.

    Args:
        src: a ``.npz`` file or a folder of ``.npy`` files (see :func:`array_source`).
    """
    src = Path(src).expanduser()
    if presplit_pairs(src):
        parts, classes, name = load_split_arrays(src)
    else:
        x, y, classes, name = load_arrays(src)
        parts = {"": (x, y)}
    arrays, key = part_folder("arrays"), _digest(src)
    if (arrays / key / _DONE).is_file() and (arrays / key / name).is_dir():
        return arrays / key / name, classes

    def build(staging: Path) -> None:
        for split, (x, y) in parts.items():
            _write_pngs(staging / name / split, x, y, classes)
        (staging / _DONE).write_text(str(src) + "\n")

    # the cache's one scheme: under its lock, written aside, renamed; a second process waits, then
    # finds the entry made
    return build_once(arrays, key, build) / name, classes


def _write_pngs(folder: Path, x: np.ndarray, y: np.ndarray, classes: list[str]) -> None:
    from PIL import Image

    width = max(5, len(str(len(x))))

    def write(i: int) -> None:
        img = x[i][..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x[i]
        path = folder / classes[y[i]] / f"{i:0{width}d}.png"
        Image.fromarray(img, "L" if img.ndim == 2 else "RGB").save(path, compress_level=1)

    for c in classes:
        (folder / c).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        list(pool.map(write, range(len(x))))
