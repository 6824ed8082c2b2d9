"""The doctor on 10,000 and 100,000 tiny synthetic files: its time, how that grows, and its file
checks in one process against a pool of every core (and against threads).

The files are 16-32 px PNGs and JPEGs in 5 class folders (a noisy gradient per class), 2% of them
exact copies of another file; they are written once into ``--data`` (kept for the next call) or a
temporary folder. Three measurements, each side by side in this one process:

- ``crossover``: :func:`imgclf.data.file_facts.inspect_files` on the first n files, in one process
  against the pool, for small n: where the pool starts paying for its start-up.
- ``checks``: the same on ``--sizes``' first size, in one process, in threads and in the pool.
- ``doctor``: ``imgclf.doctor(folder)`` (scan, checks, duplicate search, report) on each size, with
  the file checks in one process and in the pool: wall and CPU seconds (this process and its
  workers) and seconds per 1,000 files, so a linear growth shows as a flat last column::

    .venv/bin/python bench/bench_doctor.py --sizes 10000,100000 --data /tmp/imgclf-doctor
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

import imgclf
from imgclf.data import file_facts

CLASSES = ("a", "b", "c", "d", "e")


def make_files(folder: Path, n: int, seed: int = 0) -> Path:
    """``n`` tiny images in ``folder/<class>/``, written once (a ``.done`` marker)."""
    if (folder / ".done").exists():
        return folder
    rng = np.random.default_rng(seed)
    for c in CLASSES:
        (folder / c).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for k in range(n):
        c = CLASSES[k % len(CLASSES)]
        ext = ".png" if k % 2 else ".jpg"
        out = folder / c / f"{k:07d}{ext}"
        if written and rng.random() < 0.02:  # an exact copy of an earlier file of this class
            shutil.copyfile(written[-len(CLASSES)] if len(written) >= 5 else written[0], out)
        else:
            side = int(rng.integers(16, 33))
            ramp = np.linspace(0, 255 * (k % len(CLASSES) + 1) / len(CLASSES), side)
            pixels = ramp[None, :, None] + rng.normal(0, 30, (side, side, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out)
        written.append(out)
    (folder / ".done").write_text("")
    return folder


def cpu_seconds() -> float:
    """User + system seconds of this process and of its finished children (pool workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds, result) of ``fn()``."""
    w, c = time.perf_counter(), cpu_seconds()
    result = fn()
    return time.perf_counter() - w, cpu_seconds() - c, result


def serial(paths: list[str]):
    return file_facts.inspect_files(paths, workers=1)


def pool(paths: list[str]):
    return file_facts.inspect_files(paths)


def threads(paths: list[str]):
    with ThreadPoolExecutor(min(16, (os.cpu_count() or 2) * 2)) as ex:
        return list(ex.map(file_facts.inspect_file, paths))


def crossover(paths: list[str]) -> None:
    saved, file_facts.POOL_MIN_FILES = file_facts.POOL_MIN_FILES, 0  # the pool even for a few
    try:
        for n in (50, 100, 200, 400, 800, 1600):
            one, _, _ = timed(lambda n=n: serial(paths[:n]))
            many, _, _ = timed(lambda n=n: pool(paths[:n]))
            print(
                f"crossover files={n} serial_s={one:.2f} pool_s={many:.2f} ratio={one / many:.2f}"
            )
    finally:
        file_facts.POOL_MIN_FILES = saved


def checks(paths: list[str]) -> None:
    results = {}
    for name, fn in (("serial", serial), ("threads", threads), ("pool", pool)):
        wall, cpu, results[name] = timed(lambda fn=fn: fn(paths))
        print(f"checks files={len(paths)} way={name} wall_s={wall:.1f} cpu_s={cpu:.1f}", flush=True)
    assert results["serial"] == results["threads"] == results["pool"]  # same facts, same order


def doctor(folder: Path, n: int) -> None:
    for name, floor in (("serial", 10**12), ("pool", file_facts.POOL_MIN_FILES)):
        saved, file_facts.POOL_MIN_FILES = file_facts.POOL_MIN_FILES, floor
        try:
            wall, cpu, report = timed(lambda: imgclf.doctor(folder))
        finally:
            file_facts.POOL_MIN_FILES = saved
        print(
            f"doctor files={n} checks={name} wall_s={wall:.1f} cpu_s={cpu:.1f} "
            f"s_per_1000={1000 * wall / n:.2f} usable={report.to_dict()['usable']} "
            f"load={os.getloadavg()[0]:.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="file counts, comma-separated")
    parser.add_argument("--data", type=Path, default=None, help="where the files are kept")
    parser.add_argument("--skip", default="", help="parts to skip: crossover,checks,doctor")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    skip = set(args.skip.split(","))
    print(f"cores={os.cpu_count()} load={os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="imgclf-doctor-") as tmp:
        base = args.data or Path(tmp)
        folders = {n: make_files(base / str(n), n, seed=n) for n in sizes}
        first = sorted(str(p) for p in folders[sizes[0]].rglob("*.*") if p.name != ".done")
        if "crossover" not in skip:
            crossover(first)
        if "checks" not in skip:
            checks(first)
        if "doctor" not in skip:
            for n, folder in folders.items():
                doctor(folder, n)


if __name__ == "__main__":
    main()
