"""A public held-out source: a dataset that ships a training folder and an official test folder
from other acquisitions. How far below its own random split does each recipe score there?

bench_shift measures the sign-language digits against held-out sets built from them (later
sessions, shifted copies). This takes a fetched public set instead, whose test folder the
publishers collected apart from the training folder, e.g. the brain-MRI set of
github.com/SartajBhuvaji/Brain-Tumor-Classification-DataSet (``Training/`` and ``Testing/``, four
classes, mostly 512 px slices)::

    PYTHONPATH=$PWD .venv/bin/python bench/bench_public_shift.py --train /tmp/mri/Training \\
        --test /tmp/mri/Testing --work /tmp/s16/mri --seed 42 \\
        --arm 'seed2=seed=142' --arm 'lite2=model=efficientnet_lite2' \\
        --ensemble default+seed2 --ensemble default+lite2

The first arm, ``default``, trains ``imgclf.train(TRAIN, test_dir=TEST)`` with nothing else set:
its random split (seed ``--seed``) is the internal test. Every ``--arm NAME=KEY=VALUE;…`` then
trains on exactly that split (laid out as ``presplit/{train,val,test}/`` links) with those options
changed. Each model starts from a cold feature cache of its own; its CPU seconds (user + sys of
this process while it trains) are printed beside its accuracies. ``--ensemble A+B`` scores the
average of two arms' calibrated probabilities (each model at its own input size): twice the
training and twice the forward passes of one model. Runs already under ``WORK/runs/`` are scored
again, not trained again.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_seed_ensemble import _probs, lay_out_split  # noqa: E402
from bench_shift import _cpu, _line, parse_variant  # noqa: E402

TEST, UNSEEN = "official-test", "unseen"


def train_arm(name: str, options: dict, data: Path, test: Path, work: Path, seed: int) -> float:
    """Train one arm on ``data`` with ``test`` as its ``--test-dir`` (its own cold feature cache)
    unless ``WORK/runs/NAME`` exists; returns the CPU seconds it took (0 when it was there)."""
    import imgclf

    if (work / "runs" / name / "metrics.json").is_file():
        return 0.0
    shutil.rmtree(work / "runs" / name, ignore_errors=True)
    os.environ["IMGCLF_CACHE"] = str(work / "cache" / name)  # read when the run starts: cold
    cpu = _cpu()
    options = {"seed": seed, "report": False, **options}
    imgclf.train(data, test_dir=str(test), out=str(work / "runs"), name=name, verbose=0, **options)
    shutil.rmtree(work / "cache" / name, ignore_errors=True)
    return _cpu() - cpu


def score_arm(name: str, run, test: Path, train_cpu: float) -> dict[str, float]:
    """Print bench_shift's lines for one run: the internal test split and the official test."""
    from imgclf.evaluation.evaluate import evaluate_run

    print(
        f"== {name}: model {run.config.model} at {run.image_size} px, augment "
        f"{run.config.augment!r}, seed {run.config.seed}; training {train_cpu:.0f} CPU s",
        flush=True,
    )
    internal = evaluate_run(run, None)
    print("-- tta none: " + _line("internal", internal, compared=False), flush=True)
    external = evaluate_run(run, test)
    print(_line(TEST, external), flush=True)
    unseen = external.honesty["external"]  # the part the run never saw, or the whole folder
    print(f"{UNSEEN:<18} n={unseen['n']}  accuracy {unseen['accuracy']:.4f}", flush=True)
    return {
        "internal": internal.statistics["accuracy"]["value"],
        TEST: external.statistics["accuracy"]["value"],
        UNSEEN: unseen["accuracy"],
        "cpu": train_cpu,
    }


def _seen(run, test: Path) -> set[str]:
    """The images of ``test`` that ``run`` saw in training or validation (its evaluation's
    seen.csv: same path, same content or a near duplicate), as resolved paths."""
    from imgclf.evaluation.overlap import SEEN_FILE

    seen = run.path / "evaluations" / test.name / SEEN_FILE
    if not seen.is_file():
        return set()
    with open(seen, newline="", encoding="utf-8") as fh:
        return {str(Path(row["path"]).resolve()) for row in csv.DictReader(fh)}


def score_ensemble(runs: list, test: Path) -> dict[str, float]:
    """Accuracy of the average of ``runs``' calibrated probabilities on the first run's internal
    test split, on ``test`` and on the part of ``test`` that no run saw."""
    from imgclf.evaluation.evaluate import _items  # a run's test split, or a folder's images

    accuracy, seen = {}, set().union(*(_seen(run, test) for run in runs))
    for label, folder in {"internal": None, TEST: test}.items():
        items = _items(runs[0], folder)[0]
        scored = [_probs(run, items) for run in runs]
        labels, paths = scored[0][1], scored[0][2]
        if any(not np.array_equal(labels, y) or p != paths for _, y, p in scored):
            raise SystemExit(f"the runs scored different images or labels on {label}")
        right = np.mean([p for p, _, _ in scored], axis=0).argmax(1) == labels
        parts = {label: np.ones(len(labels), bool)}
        if folder is not None:
            parts[UNSEEN] = np.array([str(Path(p).resolve()) not in seen for p in paths])
        for part, keep in parts.items():
            accuracy[part] = float(np.mean(right[keep]))
            print(f"{part:<18} n={int(keep.sum())}  accuracy {accuracy[part]:.4f}", flush=True)
    return accuracy


def _table(rows: dict[str, dict[str, float]]) -> None:
    print(f"\n| arm | internal | {TEST} | its unseen part | gap (points) | train CPU s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        gap = 100 * (r[UNSEEN] - r["internal"])
        print(
            f"| {name} | {100 * r['internal']:.2f} % | {100 * r[TEST]:.2f} % | "
            f"{100 * r[UNSEEN]:.2f} % | {gap:+.2f} | {r['cpu']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, type=Path, help="the set's training folder")
    parser.add_argument("--test", required=True, type=Path, help="its official test folder")
    parser.add_argument("--work", required=True, type=Path, help="folder for the runs and caches")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--arm", action="append", default=[], help="NAME=KEY=VALUE;KEY=VALUE")
    parser.add_argument("--ensemble", action="append", default=[], help="ARM+ARM[+ARM…]")
    args = parser.parse_args()
    import imgclf

    start, work = time.perf_counter(), args.work
    print(f"train {args.train}, test {args.test}; load average {os.getloadavg()}", flush=True)
    cpu = train_arm("default", {}, args.train, args.test, work, args.seed)
    rows = {
        "default": score_arm("default", imgclf.load_run(work / "runs" / "default"), args.test, cpu)
    }
    presplit = work / "presplit"
    if args.arm and not presplit.is_dir():
        lay_out_split(work / "runs" / "default", args.train, presplit)
    for name, options in map(parse_variant, args.arm):
        cpu = train_arm(name, options, presplit, args.test, work, args.seed)
        rows[name] = score_arm(name, imgclf.load_run(work / "runs" / name), args.test, cpu)
    for spec in args.ensemble:
        names = spec.split("+")
        cpu = sum(rows[n]["cpu"] for n in names)
        print(f"== {spec} (averaged); training {cpu:.0f} CPU s")
        runs = [imgclf.load_run(work / "runs" / n) for n in names]
        rows[spec] = {**score_ensemble(runs, args.test), "cpu": cpu}
    _table(rows)
    print(f"cpu {_cpu():.0f}s, wall {time.perf_counter() - start:.0f}s; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
