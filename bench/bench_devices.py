"""`imgclf train --devices 1` against `--devices 2` on the same data and seed: test accuracy and
CPU seconds, side by side in one run. Without a GPU, `--devices 2` splits the CPU into two logical
devices (tf.distribute.MirroredStrategy): the learning-rate rule and the strategy's overhead are
measured, not a speed-up (the logical devices share the cores).

Each command runs in its own process (TensorFlow fixes its devices at first use) with a fresh
feature cache; the commands alternate (1, 2, 1, 2, …) so a load that comes and goes hits both
alike. CPU: the child's user + system seconds, which other jobs on the machine do not inflate::

    .venv/bin/python bench/bench_devices.py --per-class 30 --repeat 1

Data: ``--per-class`` images of each class of the shared sign-language-digits dataset (linked into
a temporary folder), ``--model`` (default efficientnet_lite0) at ``--image-size``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from common import ROOT, subset, timed_imgclf


def train(data: Path, devices: int, args, work: Path, k: int) -> dict:
    """One ``imgclf train --quiet`` command; its accuracy, wall and CPU seconds."""
    env = {"IMGCLF_CACHE": str(work / f"cache{k}")}
    argv = ["train", str(data), "--devices", str(devices)]
    argv += ["--model", args.model, "--image-size", str(args.image_size), "--seed", "42"]
    argv += ["--epochs", str(args.epochs), "--no-report", "--quiet"]
    argv += ["--out", str(work / "runs"), "--name", f"d{devices}_{k}"]
    wall, cpu, done = timed_imgclf(argv, env, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"devices {devices}: exit {done.returncode}\n{done.stderr[-2000:]}")
    fields = dict(f.split("=", 1) for f in done.stdout.strip().splitlines()[-1].split("\t")[1:])
    accuracy, n = float(fields["accuracy"]), int(fields["n"])
    return {"devices": devices, "accuracy": accuracy, "n": n, "cpu_s": cpu, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_devices_") as tmp:
        work = Path(tmp)
        data = subset(work / "digits", args.per_class)
        rows = []
        for k in range(args.repeat):
            for devices in (1, 2):
                row = train(data, devices, args, work, k)
                rows.append(row)
                print(
                    f"devices {devices}: test accuracy {row['accuracy']:.4f} (n={row['n']}), "
                    f"CPU {row['cpu_s']:.1f} s, wall {row['wall_s']:.1f} s",
                    flush=True,
                )
        cpu = {d: sum(r["cpu_s"] for r in rows if r["devices"] == d) for d in (1, 2)}
        print(f"CPU seconds 2 devices / 1 device: {cpu[2] / cpu[1]:.2f}; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
