"""Activations of a frozen backbone prefix, computed once per image and augmented view, kept on disk.

With the bottom of a pretrained backbone frozen, its output for an image never changes, so paying for
that forward pass every epoch (what the notes' frozen VGG16 does) is waste. imgclf computes it once per
image — and once per augmented view when augmentation is on — and trains the rest on the stored
activations. Entries are keyed by backbone, cut layer, image size, augmentation and *file content*
(not path), so a second run on the same data, or on a copy of it, reuses them.

Layout: ``<cache root>/<key>/view<k>.npz`` holding ``hashes`` (n,) and ``activations`` (n, …) float16.
The root is ``$IMGCLF_CACHE`` or ``~/.cache/imgclf``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from imgclf.config import cache_root

__all__ = ["FeatureCache", "file_digest", "default_cache_root"]


def default_cache_root() -> Path:
    return cache_root() / "features"


def file_digest(path: str | Path) -> str:
    """Content hash of a file (BLAKE2b, 128 bit)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class FeatureCache:
    """Look up and store activations by content hash. ``hits``/``misses`` count what the last call found."""

    def __init__(self, root: Path | None, key_parts: Sequence[object]):
        self.root = root
        self.key = hashlib.blake2b(repr(tuple(key_parts)).encode(), digest_size=12).hexdigest()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def digests(paths: Sequence[str]) -> list[str]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(file_digest, paths))

    def _file(self, view: int) -> Path | None:
        return None if self.root is None else self.root / self.key / f"view{view}.npz"

    def _load(self, view: int) -> dict[str, np.ndarray]:
        f = self._file(view)
        if f is None or not f.exists():
            return {}
        try:
            with np.load(f) as z:
                return dict(zip(z["hashes"].tolist(), z["activations"]))
        except (OSError, ValueError, KeyError):  # a damaged cache file is ignored and rewritten
            return {}

    def _save(self, view: int, table: dict[str, np.ndarray]) -> None:
        f = self._file(view)
        if f is None:
            return
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f.stem + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, hashes=np.array(list(table)), activations=np.stack(list(table.values())))
        os.replace(tmp, f)

    def get(
        self, hashes: Sequence[str], view: int, compute: Callable[[list[int]], tuple[list[int], np.ndarray]]
    ) -> tuple[list[int], np.ndarray]:
        """Activations for ``hashes``: (indices found, their rows in order). ``compute(missing)``
        returns the indices it could compute (an undecodable file drops out) and their rows."""
        table = self._load(view)
        missing = [i for i, h in enumerate(hashes) if h not in table]
        self.hits += len(hashes) - len(missing)
        if missing:
            kept, fresh = compute(missing)
            self.misses += len(kept)
            for i, row in zip(kept, fresh.astype(np.float16)):
                table[hashes[i]] = row
            if kept:
                self._save(view, table)
        present = [i for i, h in enumerate(hashes) if h in table]
        if not present:
            return [], np.zeros((0,), np.float32)
        return present, np.stack([table[hashes[i]] for i in present]).astype(np.float32)
