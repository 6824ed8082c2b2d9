"""imgclf.data.duplicates: the perceptual hash, vectorised near-pair search, exact/near clusters."""

from __future__ import annotations

import io
from itertools import combinations

import numpy as np
import pytest
from PIL import Image

from imgclf.data.duplicates import duplicate_clusters, near_pairs, phash


def texture(seed: int, size=(96, 80)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
        size, Image.Resampling.BICUBIC
    )


def reencoded(im: Image.Image, size, quality=70) -> Image.Image:
    buf = io.BytesIO()
    im.resize(size, Image.Resampling.BILINEAR).save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def distance(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def test_phash_survives_resizing_recompression_and_brightness():
    im = texture(0)
    h = phash(im)
    assert distance(h, phash(reencoded(im, (48, 40)))) <= 2
    assert distance(h, phash(reencoded(im, (400, 333), quality=95))) <= 2
    brighter = Image.fromarray(np.clip(np.asarray(im, np.int16) + 25, 0, 255).astype(np.uint8))
    assert distance(h, phash(brighter)) <= 2
    assert distance(h, phash(im.convert("L"))) == 0  # colour mode does not matter


def test_different_pictures_are_far_apart():
    hashes = [phash(texture(s)) for s in range(30)]
    assert min(distance(a, b) for a, b in combinations(hashes, 2)) > 8


@pytest.mark.parametrize("threshold", [0, 3, 10, 20])
def test_near_pairs_matches_brute_force(threshold):
    rng = np.random.default_rng(threshold)
    base = rng.integers(0, 2**63, 40, dtype=np.int64).astype(np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, (600, 3)).astype(np.uint64)
    noisy = (
        base[rng.integers(0, 40, 600)] ^ flips[:, 0] ^ flips[:, 1] ^ flips[:, 2]
    )  # > one block of 256
    hashes = [int(x) for x in noisy]
    expected = {
        (i, j)
        for i, j in combinations(range(len(hashes)), 2)
        if distance(hashes[i], hashes[j]) <= threshold
    }
    got = near_pairs(hashes, threshold)
    assert {(i, j) for i, j, _ in got} == expected
    assert all(d == distance(hashes[i], hashes[j]) for i, j, d in got)


def test_clusters_are_exact_or_near_and_chain():
    digests = ["a", "b", "a", "c", "d", "e"]
    hashes = [
        0b0,
        0xFFFF,
        0b0,
        0b1,
        0b11,
        0xFFFF_0000_0000,
    ]  # c≈a (1 bit), d≈c (1 bit), d is 2 bits from a
    clusters = duplicate_clusters(digests, hashes, threshold=1)
    assert clusters == [("near", [0, 2, 3, 4])]
    assert duplicate_clusters(digests, hashes, threshold=0) == [("exact", [0, 2])]
    assert duplicate_clusters(digests, hashes, threshold=-1) == [("exact", [0, 2])]


def test_an_undecodable_file_only_joins_exact_clusters():
    assert duplicate_clusters(["x", "x", "y"], [None, None, 5], threshold=64) == [("exact", [0, 1])]


def planted_hashes(n: int, threshold: int, seed: int) -> np.ndarray:
    """``n`` random 64-bit hashes, a third of them copies of others with up to ``threshold + 2``
    bits flipped (pairs just inside and just outside the threshold), and a few exact repeats."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    hashes |= rng.integers(0, 2, n).astype(np.uint64)  # the top and bottom bits vary too
    copies = rng.choice(n, n // 3, replace=False)
    for k, i in enumerate(copies):
        source = hashes[rng.integers(0, n)]
        bits = rng.choice(64, k % (threshold + 3), replace=False).astype(np.uint64)
        hashes[i] = source ^ np.bitwise_or.reduce(np.uint64(1) << bits, initial=np.uint64(0))
    return hashes


def brute_force(hashes: np.ndarray, threshold: int) -> list[tuple[int, int, int]]:
    out = []
    for i in range(len(hashes) - 1):
        dist = np.bitwise_count(hashes[i] ^ hashes[i + 1 :])
        for c in np.flatnonzero(dist <= threshold):
            out.append((i, i + 1 + int(c), int(dist[c])))
    return out


@pytest.mark.parametrize("threshold", [0, 4, 8])
def test_near_pairs_equals_brute_force_on_10000_hashes(threshold):
    hashes = planted_hashes(10_000, threshold, seed=threshold)
    expected = brute_force(hashes, threshold)
    assert len(expected) > 1000  # the planted pairs are there to be found
    assert near_pairs([int(h) for h in hashes], threshold) == expected


def test_near_pairs_of_equal_hashes_pair_every_copy():
    hashes = [7, 7, 7, 6, 2**40]  # three equal, one a bit away, one far
    assert near_pairs(hashes, 1) == [
        (0, 1, 0),
        (0, 2, 0),
        (0, 3, 1),
        (1, 2, 0),
        (1, 3, 1),
        (2, 3, 1),
    ]
    assert near_pairs(hashes, -1) == [] and near_pairs([], 4) == [] and near_pairs([5], 4) == []


def test_clusters_of_many_equal_hashes_are_one_cluster_without_pairing_them():
    n = 20_000  # blank pictures with different bytes: n²/2 = 2e8 pairs if each were listed
    digests = [f"d{i}" for i in range(n)] + ["x"]
    hashes = [0] * n + [0b11]
    clusters = duplicate_clusters(digests, hashes, threshold=2)
    assert clusters == [("near", list(range(n + 1)))]
