"""The doctor's near-duplicate search: multi-index hashing against comparing every pair.

Random 64-bit hashes, a third of them planted copies of others with 0 … threshold + 2 bits
flipped, and 1 % of them (at most 1,000) one blank picture's hash (equal values). One line per
size: seconds (wall and this process's CPU) of ``near_pairs`` and, up to ``--brute-max``, of the
old every-pair search, and the pairs found::

    .venv/bin/python bench/bench_near_pairs.py --sizes 10000,100000,1000000 --threshold 4
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from imgclf.data.duplicates import near_pairs


def hashes(n: int, threshold: int, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    copies = rng.choice(n, n // 3, replace=False)
    sources = values[rng.integers(0, n, len(copies))]
    flips = rng.integers(0, threshold + 3, len(copies))
    noise = np.zeros(len(copies), np.uint64)
    for k in range(threshold + 2):
        bit = np.uint64(1) << rng.integers(0, 64, len(copies)).astype(np.uint64)
        noise ^= np.where(flips > k, bit, np.uint64(0))
    values[copies] = sources ^ noise
    values[rng.choice(n, min(n // 100, 1000), replace=False)] = np.uint64(0)  # blank pictures
    return [int(v) for v in values]


def every_pair(h: list[int], threshold: int) -> int:
    values, found = np.asarray(h, np.uint64), 0
    for start in range(0, len(values), 256):
        dist = np.bitwise_count(values[start : start + 256, None] ^ values[None, start + 1 :])
        rows, cols = np.nonzero(dist <= threshold)
        found += int(np.count_nonzero(start + 1 + cols > start + rows))
    return found


def timed(fn, *args) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--threshold", type=int, default=4)
    parser.add_argument("--brute-max", type=int, default=100_000)
    args = parser.parse_args()
    for n in (int(s) for s in args.sizes.split(",")):
        h = hashes(n, args.threshold)
        wall, cpu, pairs = timed(near_pairs, h, args.threshold)
        line = f"RESULT n={n:,}: near_pairs {wall:.2f}s wall {cpu:.2f}s CPU, {len(pairs):,} pairs"
        if n <= args.brute_max:
            b_wall, b_cpu, count = timed(every_pair, h, args.threshold)
            same = "same count" if count == len(pairs) else f"DIFFERENT count {count:,}"
            line += f"; every pair {b_wall:.2f}s wall {b_cpu:.2f}s CPU ({same})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
