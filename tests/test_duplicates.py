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
