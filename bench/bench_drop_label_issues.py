"""`imgclf train COPY` against `imgclf train COPY --drop-label-issues` on a copy of the
sign-language digits with 5 % of the labels flipped, side by side in one run: the test accuracy
against the given labels (5 % of the test images carry a wrong one too) and against the true
labels (the flip plan knows them; the test images are never trained on, so this is the honest
score), the training and validation images left out (recall and precision against the flipped
ones outside the test split, which is never checked), and what each whole command costs (wall
and CPU seconds, cold feature cache each)::

    .venv/bin/python bench/bench_drop_label_issues.py [--flip-seed 0] [--seed 42] [--report]

The copy is bench_label_issues.py's (``flipped_copy``): every photo, ``--flip`` of them (seeded by
``--flip-seed``) moved into another class's folder. ``--seed`` is the runs' split and training seed.
Without ``--report`` both runs skip report.html (the same few seconds in each arm).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
from pathlib import Path

from bench_label_issues import flipped_copy, moved
from common import DIGITS, result, timed_imgclf


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def score_run(run: Path, data: Path, truth: dict[str, str]) -> dict:
    """A run's test accuracy against the given and the true labels, and what it left out."""
    rows = _rows(run / "predictions.csv")
    given = sum(r["predicted_label"] == r["true_label"] for r in rows) / len(rows)
    true = sum(r["predicted_label"] == truth[r["path"]] for r in rows) / len(rows)
    split = {str(data / r["path"]): r["split"] for r in _rows(run / "split.csv")}
    left_out = set(truth) - set(split)
    flipped = moved(truth)
    # the flipped images that were checked: all but those in the test split
    flipped_checked = flipped - {p for p, s in split.items() if s == "test"}
    hits = len(left_out & flipped_checked)
    return {
        "n_test": len(rows),
        "test_given": given,
        "test_true": true,
        "left_out": len(left_out),
        "flipped_checked": len(flipped_checked),
        "recall": hits / max(len(flipped_checked), 1),
        "precision": hits / max(len(left_out), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DIGITS)
    ap.add_argument("--flip", type=float, default=0.05, help="fraction of labels flipped")
    ap.add_argument("--flip-seed", type=int, default=0, help="which files are flipped")
    ap.add_argument("--seed", type=int, default=42, help="the runs' split and training seed")
    ap.add_argument("--report", action="store_true", help="build report.html in both runs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_drop_") as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        truth = flipped_copy(args.data, data, args.flip, args.flip_seed)
        flipped = len(moved(truth))
        print(f"{args.data}: {len(truth)} images, {flipped} flipped (flip seed {args.flip_seed})")
        for arm, extra in (("keep", []), ("drop", ["--drop-label-issues"])):
            argv = ["train", str(data), "--out", str(tmp / "runs"), "--name", arm]
            argv += ["--seed", str(args.seed), *extra, *([] if args.report else ["--no-report"])]
            wall, cpu, done = timed_imgclf(argv, {"IMGCLF_CACHE": str(tmp / f"cache_{arm}")})
            if done.returncode:
                raise SystemExit(f"imgclf {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
            s = score_run(tmp / "runs" / arm, data, truth)
            report = json.loads((tmp / "runs" / arm / "data_report.json").read_text("utf-8"))
            found = report["doctor"].get("label_issues")
            if found:
                s["label_pass_s"] = float(sum(found["seconds"].values()))
                print(next(x for x in done.stdout.splitlines() if x.startswith("label issues:")))
            result(arm=arm, flip_seed=args.flip_seed, seed=args.seed, wall_s=wall, cpu_s=cpu, **s)
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
