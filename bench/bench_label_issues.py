"""`imgclf doctor DATA --labels` on a copy of the sign-language digits with 5 % of the labels
flipped: how many of the flipped images it finds (recall), how many of its finds were flipped
(precision), and what it costs (wall and CPU seconds of the whole command, cold feature cache, then
warm)::

    .venv/bin/python bench/bench_label_issues.py

The copy: every photo of ``--data`` (2,062 in folders 0–9) copied into a temporary folder, with
``--flip`` of them (seeded) moved into another class's folder. With ``--cleanlab`` (cleanlab
importable, e.g. ``PYTHONPATH=/path/to/cleanlab``), the same out-of-fold probabilities also go
through ``cleanlab.filter.find_label_issues`` and the two sets of finds are compared.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import DIGITS, timed_imgclf


def flip_plan(src: Path, fraction: float, seed: int) -> dict[Path, str]:
    """Every file of ``src`` (class folders) and the class folder it goes to: ``fraction`` of them
    (seeded) in another class's."""
    files = sorted(p for p in src.glob("*/*") if p.is_file() and p.parent.name != ".")
    classes = sorted({p.parent.name for p in files})
    rng = np.random.default_rng(seed)
    flip = set(rng.choice(len(files), size=round(fraction * len(files)), replace=False).tolist())
    plan = {}
    for i, f in enumerate(files):
        label = f.parent.name
        if i in flip:
            label = str(rng.choice([c for c in classes if c != f.parent.name]))
        plan[f] = label
    return plan


def flipped_copy(src: Path, dst: Path, fraction: float, seed: int) -> dict[str, str]:
    """Copy ``src`` (class folders) to ``dst`` with ``fraction`` of the files in a wrong class;
    returns every copy's path (under ``dst``) and its true class."""
    truth = {}
    for f, label in flip_plan(src, fraction, seed).items():
        target = dst / label / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
        truth[str(target)] = f.parent.name
    return truth


def moved(truth: dict[str, str]) -> set[str]:
    """The paths of :func:`flipped_copy`'s copies that sit in a wrong class's folder."""
    return {p for p, label in truth.items() if Path(p).parent.name != label}


def timed(argv: list[str], cache: Path) -> tuple[float, float, str]:
    """``python -m imgclf *argv`` with ``cache`` as $IMGCLF_CACHE: (wall s, CPU s, stdout)."""
    wall, cpu, done = timed_imgclf(argv, {"IMGCLF_CACHE": str(cache)})
    if done.returncode:
        sys.exit(f"imgclf {' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, cpu, done.stdout


def scores(csv_path: Path, flipped: set[str]) -> tuple[int, float, float]:
    """(finds, recall, precision) of label_issues.csv against the flipped paths."""
    with open(csv_path, newline="", encoding="utf-8") as fh:
        found = {r["path"] for r in csv.DictReader(fh)}
    hit = len(found & flipped)
    return len(found), hit / max(len(flipped), 1), hit / max(len(found), 1)


def cleanlab_check(data: Path, cache: Path, flipped: set[str]) -> str:
    """The same out-of-fold probabilities through cleanlab's default filter (prune by noise rate):
    its finds vs our NumPy copy's."""
    os.environ["IMGCLF_CACHE"] = str(cache)
    from cleanlab.filter import find_label_issues as cl_find

    from imgclf.constants import LABEL_ISSUE_FOLDS, LABEL_ISSUE_MODEL
    from imgclf.data.scan import scan_folder
    from imgclf.models.registry import choose_image_size, get_spec
    from imgclf.training.confident_learning import find_issues
    from imgclf.training.label_issues import out_of_fold_probabilities, pooled_features

    scanned = scan_folder(data)
    size = choose_image_size(
        get_spec(LABEL_ISSUE_MODEL), [min(i.width, i.height) for i in scanned.items]
    )
    feats, kept = pooled_features(scanned.items, size)
    labels = np.array([scanned.items[i].label for i in kept])
    probs = out_of_fold_probabilities(feats, labels, len(scanned.classes), LABEL_ISSUE_FOLDS, 42)
    # cleanlab's default filter against our NumPy copy of it (the doctor's default is another)
    ours = find_issues(labels, probs, "prune_by_noise_rate")
    theirs = cl_find(labels, probs)
    paths = np.array([scanned.items[i].path for i in kept])
    truth = np.isin(paths, sorted(flipped))
    return (
        f"cleanlab {int(theirs.sum())} finds (recall {truth[theirs].sum() / truth.sum():.3f}, "
        f"precision {truth[theirs].mean():.3f}); ours {int(ours.sum())}; "
        f"both {int((ours & theirs).sum())}, only ours {int((ours & ~theirs).sum())}, "
        f"only cleanlab {int((theirs & ~ours).sum())}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DIGITS)
    ap.add_argument("--flip", type=float, default=0.05, help="fraction of labels flipped")
    ap.add_argument(
        "--flip-seed", "--seed", dest="seed", type=int, default=0, help="which files are flipped"
    )
    ap.add_argument("--cold-only", action="store_true", help="skip the second (warm) run")
    ap.add_argument("--cleanlab", action="store_true", help="compare with cleanlab's filter")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_labels_") as tmp:
        tmp = Path(tmp)
        data, cache = tmp / "data", tmp / "cache"
        flipped = moved(flipped_copy(args.data, data, args.flip, args.seed))
        n = sum(1 for _ in data.glob("*/*"))
        print(f"{args.data}: {n} images, {len(flipped)} flipped (flip seed {args.seed})")
        for state in ("cold",) if args.cold_only else ("cold", "warm"):
            out = tmp / f"out_{state}"
            wall, cpu, stdout = timed(["doctor", str(data), "--labels", "--out", str(out)], cache)
            n, recall, precision = scores(out / "label_issues.csv", flipped)
            print(
                f"doctor --labels ({state} cache): {n} finds, recall {recall:.3f}, precision "
                f"{precision:.3f}; {wall:.1f} s wall, {cpu:.1f} s CPU (user+sys)"
            )
        print(next(line for line in stdout.splitlines() if line.startswith("label issues:")))
        if args.cleanlab:
            print(cleanlab_check(data, cache, flipped))
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
