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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from imgclf.data.groups import UnionFind
from imgclf.data.hamming import match_hashes

__all__ = ["DEFAULT_NEAR_THRESHOLD", "phash", "near_pairs", "duplicate_clusters"]

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


def duplicate_clusters(
    digests: Sequence[str], hashes: Sequence[int | None], threshold: int
) -> list[tuple[str, list[int]]]:
    """Clusters of 2+ indices, each ``("exact", members)`` when all share one digest, else
    ``("near", members)``.

    ``hashes[i]`` may be None (an image that could not be decoded): it joins exact clusters only.
    ``threshold < 0`` turns near-duplicate search off.

    Args:
        digests: a content digest (SHA-256 of the bytes) per image.
        hashes: a perceptual hash per image (see :func:`phash`), or None.
        threshold: the largest Hamming distance of a near pair; negative for exact duplicates only.
    """
    n = len(digests)
    uf = UnionFind(n)
    first: dict[str, int] = {}
    for i, d in enumerate(digests):
        if d in first:
            uf.union(first[d], i)
        else:
            first[d] = i
    if threshold >= 0:
        # one representative per exact digest keeps the comparison small
        reps = np.array(
            [i for i, d in enumerate(digests) if first[d] == i and hashes[i] is not None], np.int64
        )
        found = match_hashes([hashes[i] for i in reps], threshold)
        for group in found.groups():  # equal hashes: chained, never paired one by one
            for i in group[1:]:
                uf.union(int(reps[group[0]]), int(reps[i]))
        one = reps[found.first]  # an input of each distinct value (its group is joined above)
        for a, b in zip(one[found.a].tolist(), one[found.b].tolist(), strict=True):
            uf.union(a, b)
    clusters = []
    for members in uf.components():
        if len(members) > 1:
            kind = "exact" if len({digests[i] for i in members}) == 1 else "near"
            clusters.append((kind, sorted(members)))
    return sorted(clusters, key=lambda c: c[1][0])
