"""Every pair of 64-bit hashes within a Hamming distance, without comparing every pair.

Multi-index hashing (Norouzi, Punjani and Fleet, "Fast Search in Hamming Space with Multi-Index
Hashing", CVPR 2012): cut the 64 bits into ``threshold + 1`` slices. Two hashes that differ in at
most ``threshold`` bits cannot differ in every slice (pigeonhole), so they agree exactly on at least
one — candidates are the hashes that share a slice value, found by sorting each slice. Each
candidate is kept only for the first slice it agrees on (no set of pairs to deduplicate) and only
when its full distance is within the threshold: the result is exact, the same pairs as comparing
every pair.

Equal hashes (a blank picture copied a thousand times) are searched once: the search runs on the
distinct values and :class:`Matches` keeps which inputs share each value, so a caller that only
needs clusters never expands a group of n equal hashes into its n² pairs. A slice value shared by
very many distinct hashes still costs the square of their number — the price of being exact —
but pairs stream through in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Matches", "match_hashes"]

_BRUTE_FORCE_BELOW = 2048  # distinct values: below this, comparing every pair is cheaper
_BLOCK = 256  # rows of the brute-force comparison at a time (bounded memory)


@dataclass(frozen=True)
class Matches:
    """Near pairs among the distinct values of some hashes.

    Attributes:
        inverse: for each input hash, the index of its distinct value.
        first: for each distinct value, the first input that has it.
        a, b, distance: the pairs of distinct values (``a < b``) within the threshold, and
            how many bits they differ in (≥ 1).
    """

    inverse: np.ndarray
    first: np.ndarray
    a: np.ndarray
    b: np.ndarray
    distance: np.ndarray

    def groups(self) -> list[np.ndarray]:
        """The input indices of each distinct value that occurs more than once (ascending)."""
        order = np.argsort(self.inverse, kind="stable")
        starts = np.flatnonzero(np.diff(self.inverse[order], prepend=-1))
        return [g for g in np.split(order, starts[1:]) if len(g) > 1]


def match_hashes(hashes: Sequence[int] | np.ndarray, threshold: int) -> Matches:
    """The near pairs among the distinct values of ``hashes`` (see :class:`Matches`).

    Args:
        hashes: 64-bit hashes (Python ints or a uint64 array).
        threshold: the largest Hamming distance that counts; negative finds no pairs.
    """
    values, first, inverse = np.unique(
        np.asarray(hashes, dtype=np.uint64), return_index=True, return_inverse=True
    )
    parts = list(_distinct_pairs(values, threshold)) if threshold >= 0 else []
    if parts:
        a, b, d = (np.concatenate(x) for x in zip(*parts, strict=True))
    else:
        a = b = d = np.zeros(0, np.int64)
    return Matches(inverse.reshape(-1), first, a, b, d)


def _distinct_pairs(
    values: np.ndarray, threshold: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    if len(values) < _BRUTE_FORCE_BELOW or threshold >= 63:
        yield from _all_pairs(values, threshold)
        return
    keys = _slice_keys(values, threshold + 1)
    for s in range(len(keys)):
        yield from _shared_slice_pairs(values, keys, s, threshold)


def _slice_keys(values: np.ndarray, count: int) -> list[np.ndarray]:
    """The value of each of ``count`` contiguous bit slices (as equal in width as can be)."""
    edges = np.linspace(0, 64, count + 1).round().astype(int)
    keys = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = np.uint64((1 << int(hi - lo)) - 1)
        keys.append((values >> np.uint64(lo)) & mask)
    return keys


def _shared_slice_pairs(
    values: np.ndarray, keys: list[np.ndarray], s: int, threshold: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Pairs that agree on slice ``s`` and on no earlier slice, within the threshold.

    In slice ``s``'s sorted order, the values sharing a key are one run; the pairs at offset ``k``
    inside runs are walked for k = 1, 2, … while any run is longer than k."""
    order = np.argsort(keys[s], kind="stable")
    sorted_keys = keys[s][order]
    run_starts = np.flatnonzero(np.diff(sorted_keys, prepend=sorted_keys[0] ^ np.uint64(1)))
    run_ends = np.append(run_starts[1:], len(order))
    end = np.repeat(run_ends, np.diff(np.append(run_starts, len(order))))
    active = np.flatnonzero(end - np.arange(len(order)) > 1)
    offset = 1
    while len(active):
        active = active[active + offset < end[active]]
        i, j = order[active], order[active + offset]
        distance = np.bitwise_count(values[i] ^ values[j]).astype(np.int64)
        keep = distance <= threshold
        for earlier in keys[:s]:
            keep &= earlier[i] != earlier[j]
        if keep.any():
            lo, hi = np.minimum(i, j)[keep], np.maximum(i, j)[keep]
            yield lo.astype(np.int64), hi.astype(np.int64), distance[keep]
        offset += 1


def _all_pairs(
    values: np.ndarray, threshold: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every pair compared, a block of rows at a time against the values after them."""
    for start in range(0, len(values) - 1, _BLOCK):
        block = values[start : start + _BLOCK]
        dist = np.bitwise_count(block[:, None] ^ values[None, start + 1 :])
        rows, cols = np.nonzero(dist <= threshold)
        i, j = start + rows, start + 1 + cols
        upper = j > i  # the block's lower-left part compares a value with earlier ones
        yield i[upper], j[upper], dist[rows, cols][upper].astype(np.int64)
