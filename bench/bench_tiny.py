"""Tiny pictures (issue 21.3): the default (``--model auto`` → ``tiny_cnn`` at native size) against
the previous behaviour, whole ``imgclf train`` commands side by side, one line each.

Sets (written as pre-split NumPy arrays into a temporary folder, deleted at the end):

- ``digits``: scikit-learn's 8×8 digits (bundled with scikit-learn, offline), split as
  ``train_test_split(test_size=0.2, random_state=0, stratify=y)``: 1,437 train (imgclf holds 20 %
  of them out for validation) and 360 test pictures.
- ``fashion``: Fashion-MNIST (60,000 train, 10,000 test, 28×28) from Debian's
  ``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``: files under
  /usr/share/datasets/fashion-mnist); without it, a stand-in of the same shape: 70,000 generated
  28 px glyphs (bench_defaults' ``small`` set), whose accuracy is not comparable to Fashion-MNIST's.

Methods: ``auto`` (the default, no flags), ``cnn`` (``--model cnn``: the cnn upsampled to 64 px,
25 epochs — the previous ``--model cnn``), ``lite0`` (``--model efficientnet_lite0``: 128 px, the
previous default for 1,437 pictures). Each method is one ``python -m imgclf train`` process with a
fresh, empty ``$IMGCLF_CACHE`` (cold: import, arrays to PNG, doctor, training, test, report), run
one after the other from this process; wall and CPU (user + sys of the child) per method, and the
seconds of each epoch (``history.csv``) beside what a ``--time`` plan expected (``timings.json``)::

    .venv/bin/python bench/bench_tiny.py --set digits --methods auto,cnn,lite0
    .venv/bin/python bench/bench_tiny.py --set fashion --methods auto --time 5m
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")
METHODS = {"auto": [], "cnn": ["--model", "cnn"], "lite0": ["--model", "efficientnet_lite0"]}


def save_split(folder: Path, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Pre-split arrays (``train_features.npy`` …) in ``folder``, as imgclf reads them."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, (x, y) in parts.items():
        np.save(folder / f"{split}_features.npy", x)
        np.save(folder / f"{split}_target.npy", y)
    return folder


def make_digits(folder: Path) -> tuple[Path, str]:
    """scikit-learn's 8×8 digits, 1,437 train / 360 test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = np.clip(d.images * 16, 0, 255).astype(np.uint8)  # 17 grey levels (0-16) to 0-255
    xtr, xte, ytr, yte = train_test_split(
        x, d.target, test_size=0.2, random_state=0, stratify=d.target
    )
    parts = {"train": (xtr, ytr), "test": (xte, yte)}
    return save_split(folder / "digits", parts), "scikit-learn digits 8x8"


def _idx(name: str, offset: int) -> np.ndarray:
    return np.frombuffer(gzip.open(FASHION / name).read(), np.uint8, offset=offset)


def make_fashion(folder: Path) -> tuple[Path, str]:
    """Fashion-MNIST from the Debian package, else a 70,000-glyph stand-in of its shape."""
    if (FASHION / "train-images-idx3-ubyte.gz").is_file():
        parts = {
            split: (
                _idx(f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
                _idx(f"{prefix}-labels-idx1-ubyte.gz", 8).astype(np.int64),
            )
            for split, prefix in (("train", "train"), ("test", "t10k"))
        }
        return save_split(folder / "fashion", parts), "Fashion-MNIST (Debian package)"
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_defaults import make_small
    from PIL import Image

    glyphs = make_small(folder / "glyphs", 70_000)
    classes = sorted(p.name for p in glyphs.iterdir() if p.is_dir())
    files = [(f, k) for k, c in enumerate(classes) for f in sorted((glyphs / c).iterdir())]
    x = np.stack([np.asarray(Image.open(f).convert("L")) for f, _ in files])
    y = np.array([k for _, k in files])
    test = np.random.default_rng(0).random(len(y)) < 1 / 7
    parts = {"train": (x[~test], y[~test]), "test": (x[test], y[test])}
    return save_split(folder / "fashion", parts), "stand-in: 70,000 generated 28 px glyphs"


def run_one(method: str, data: Path, work: Path, budget: str | None) -> dict:
    """One cold ``imgclf train`` process; its model, test accuracy, wall and CPU seconds."""
    args = [sys.executable, "-m", "imgclf", "train", str(data), "--out", str(work / "runs")]
    args += ["--name", method, *METHODS[method]] + (["--time", budget] if budget else [])
    env = {**os.environ, "IMGCLF_CACHE": str(work / f"cache-{method}")}
    before, load = resource.getrusage(resource.RUSAGE_CHILDREN), os.getloadavg()[0]
    t = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode:
        return {"method": method, "error": done.stderr.strip().splitlines()[-1:]}
    run = work / "runs" / method
    config = dict(
        line.split(": ", 1)
        for line in (run / "config.yaml").read_text().splitlines()
        if ": " in line
    )
    accuracy = json.loads((run / "metrics.json").read_text())["accuracy"]
    return {
        "method": method,
        "model": f"{config['model']} at {config['image_size']} px",
        "test_accuracy": round(accuracy, 4),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "load": f"{load:.1f} -> {os.getloadavg()[0]:.1f}",
        **plan_against_epochs(run),
    }


def plan_against_epochs(run: Path) -> dict:
    """A ``--time`` run's plan (``timings.json``: epochs, the first epoch's and each later one's
    estimated seconds, the slowdown it measured) beside the seconds each epoch really took
    (``history.csv``); the epochs alone without ``--time``."""
    with open(run / "history.csv", newline="") as fh:
        seconds = [float(row["seconds"]) for row in csv.DictReader(fh)]
    plan = json.loads((run / "timings.json").read_text()).get("plan", {})
    keys = ("train_images", "epochs", "first_epoch_s", "epoch_s", "planned_s", "reserve_s")
    keys += ("slowdown",)
    planned = {key: plan[key] for key in keys if key in plan}
    return {"plan": planned, "epoch_s": seconds} if planned else {"epoch_s": seconds}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", choices=("digits", "fashion"), default="digits")
    p.add_argument("--methods", default="auto,cnn,lite0", help="comma list of auto, cnn, lite0")
    p.add_argument("--time", default=None, help="--time budget given to every method")
    args = p.parse_args(argv)
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        p.error(f"--methods: unknown {unknown}; allowed: {', '.join(METHODS)}")
    with tempfile.TemporaryDirectory(prefix="bench_tiny_") as tmp:
        work = Path(tmp)
        data, what = (make_digits if args.set == "digits" else make_fashion)(work)
        print(f"data: {what}; methods {methods}; --time {args.time}", flush=True)
        for method in methods:
            print(json.dumps(run_one(method, data, work, args.time)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
