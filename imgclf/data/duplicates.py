"""Exact and near-duplicate images: content hashes, a perceptual hash, and clusters of both.

* **exact**: same SHA-256 of the file's bytes;
* **near**: a 64-bit perceptual hash (pHash: the 8×8 lowest frequencies of the DCT of a 32×32 grey
  thumbnail, one bit per coefficient above their median) within ``threshold`` differing bits. pHash
  survives resizing, re-compression and brightness changes. (The simpler dHash was tried and
  rejected: on photos of hands against plain walls — the shared sign-language set — it called 168
  pairs of *different* classes near-duplicates at 4 bits; pHash calls none.)

Near pairs are found by multi-index hashing (:mod:`imgclf.data.hamming`): exact, and
sub-quadratic, so a million hashes take seconds rather than hours. Clusters are the connected
components of "exact or near" pairs (union-find), so a chain A≈B≈C is one cluster.

Pictures whose shorter side is under :data:`~imgclf.constants.TINY_HASH_MIN_SIDE` (32 px: pHash's
thumbnail) are too small for a perceptual hash: their 32×32 thumbnail is an upsampling that adds
nothing, and the 64 bits threshold nearly every frequency such a picture has, so different 8×8
digits share hashes (measured in docs/benchmarks.md, "Tiny images in seconds"). Their near test is
an **exact pixel match** instead (:func:`pixel_key`: the same decoded pixels, whatever the bytes
of the file), found by sorting keys — linear in the number of pictures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from imgclf.constants import TINY_HASH_MIN_SIDE
from imgclf.data.groups import UnionFind
from imgclf.data.hamming import match_hashes

__all__ = [
    "DEFAULT_NEAR_THRESHOLD",
    "phash",
    "pixel_key",
    "near_pairs",
    "near_test",
    "duplicate_clusters",
]

DEFAULT_NEAR_THRESHOLD = (
    4  # of 64 bits: conservative — re-encodings and resizes, not merely similar photos
)


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT32 = _dct_matrix(32)


def phash(im: Image.Image) -> int:
    """64-bit perceptual hash of a Pillow image (any mode).

    Args:
        im: the image; it is converted to greyscale and shrunk to 32×32 first.
    """
    grey = np.asarray(im.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float64)
    low = (_DCT32 @ grey @ _DCT32.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return int(np.packbits(bits).view(">u8")[0])


def pixel_key(im: Image.Image) -> str | None:
    """The near-duplicate key of a picture too small for :func:`phash`: a digest of its size and
    decoded RGB pixels (two files with the same pixels share it, whatever their bytes); None for a
    picture whose shorter side reaches :data:`~imgclf.constants.TINY_HASH_MIN_SIDE`.

    Args:
        im: the decoded image (any mode; compared as RGB).
    """
    if min(im.size) >= TINY_HASH_MIN_SIDE:
        return None
    rgb = im if im.mode == "RGB" else im.convert("RGB")
    h = hashlib.blake2b(f"{im.size[0]}x{im.size[1]}".encode(), digest_size=16)
    h.update(rgb.tobytes())
    return h.hexdigest()


def near_test(pixel_keys: Sequence[str | None], threshold: int) -> str:
    """Which near-duplicate test the doctor used, in words, e.g. ``pHash distance <= 4 of 64
    bits`` or ``exact pixel match (images under 32 px are too small for a perceptual hash)``.

    Args:
        pixel_keys: :func:`pixel_key` of every image (None: large enough for pHash).
        threshold: the pHash threshold; negative: no near-duplicate search.
    """
    if threshold < 0:
        return "off (exact copies only)"
    tiny = sum(k is not None for k in pixel_keys)
    exact = f"images under {TINY_HASH_MIN_SIDE} px are too small for a perceptual hash"
    if tiny and tiny == len(pixel_keys):
        return f"exact pixel match ({exact})"
    hashed = f"pHash distance <= {threshold} of 64 bits"
    return f"{hashed}; exact pixel match for {tiny} ({exact})" if tiny else hashed


def near_pairs(hashes: Sequence[int], threshold: int) -> list[tuple[int, int, int]]:
    """``(i, j, distance)`` for every ``i < j`` whose hashes differ in at most ``threshold`` bits,
    sorted by ``(i, j)``.

    Exact, and sub-quadratic: multi-index hashing (:mod:`imgclf.data.hamming`).

    Args:
        hashes: 64-bit perceptual hashes (see :func:`phash`).
        threshold: the largest Hamming distance that counts as near (e.g.
            ``DEFAULT_NEAR_THRESHOLD``).
    """
    found = match_hashes(hashes, threshold)
    shared = {int(found.inverse[g[0]]): g.tolist() for g in found.groups()}

    def inputs(value: int) -> list[int]:
        return shared.get(value) or [int(found.first[value])]

    out: list[tuple[int, int, int]] = []
    for a, b, d in zip(found.a.tolist(), found.b.tolist(), found.distance.tolist(), strict=True):
        out.extend((min(i, j), max(i, j), d) for i in inputs(a) for j in inputs(b))
    if threshold >= 0:  # the inputs that share one value are 0 bits apart
        for group in shared.values():
            out.extend((i, j, 0) for k, i in enumerate(group) for j in group[k + 1 :])
    return sorted(out)


def _join_equal(uf: UnionFind, keys: Sequence[str | None]) -> None:
    """Union every index with the first one that has the same (non-None) key."""
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k is None:
            continue
        if k in first:
            uf.union(first[k], i)
        else:
            first[k] = i


def _join_hashes(uf: UnionFind, reps: np.ndarray, hashes: Sequence[int | None], threshold: int):
    """Union the indices ``reps`` whose perceptual hashes are within ``threshold`` bits."""
    found = match_hashes([hashes[i] for i in reps], threshold)
    for group in found.groups():  # equal hashes: chained, never paired one by one
        for i in group[1:]:
            uf.union(int(reps[group[0]]), int(reps[i]))
    one = reps[found.first]  # an input of each distinct value (its group is joined above)
    for a, b in zip(one[found.a].tolist(), one[found.b].tolist(), strict=True):
        uf.union(a, b)


def duplicate_clusters(
    digests: Sequence[str],
    hashes: Sequence[int | None],
    threshold: int,
    pixel_keys: Sequence[str | None] | None = None,
) -> list[tuple[str, list[int]]]:
    """Clusters of 2+ indices, each ``("exact", members)`` when all share one digest, else
    ``("near", members)``.

    ``hashes[i]`` may be None (an image that could not be decoded): it joins exact clusters only.
    An image with a pixel key (too small for a perceptual hash) is near another only when their
    keys are equal (the same pixels), never by its hash. ``threshold < 0`` turns near-duplicate
    search off.

    Args:
        digests: a content digest (SHA-256 of the bytes) per image.
        hashes: a perceptual hash per image (see :func:`phash`), or None.
        threshold: the largest Hamming distance of a near pair; negative for exact duplicates only.
        pixel_keys: :func:`pixel_key` per image, or None for none. Defaults to None.
    """
    n = len(digests)
    keys = list(pixel_keys) if pixel_keys is not None else [None] * n
    uf = UnionFind(n)
    _join_equal(uf, digests)
    if threshold >= 0:
        _join_equal(uf, keys)
        # one representative per exact digest keeps the comparison small
        seen: set[str] = set()
        reps = []
        for i, d in enumerate(digests):
            if d not in seen and hashes[i] is not None and keys[i] is None:
                reps.append(i)
            seen.add(d)
        _join_hashes(uf, np.array(reps, np.int64), hashes, threshold)
    clusters = []
    for members in uf.components():
        if len(members) > 1:
            kind = "exact" if len({digests[i] for i in members}) == 1 else "near"
            clusters.append((kind, sorted(members)))
    return sorted(clusters, key=lambda c: c[1][0])
