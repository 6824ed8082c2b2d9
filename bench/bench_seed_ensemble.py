"""Two seeds' predictions averaged, on bench_shift's held-out sets: does an ensemble of two default
models trained on the same split hold up better off the split than one?

This takes a ``--work`` folder of an earlier ``bench_shift.py`` call (its sets, and the default run
``--first``), lays that run's split out as ``presplit/{train,val,test}/<class>/`` links (so the
second model trains, validates and is tested on exactly the same images), trains the default on it
with another seed (``--second-seed``: other initial head weights, augmented views and batch order;
its own cold feature cache), and scores the internal test split and every held-out set three ways:
the second model alone (``seed2``) and the average of both models' calibrated probabilities
(``ens2``), printed in bench_shift's lines so ``shift_summary.py`` pools them with its logs::

    PYTHONPATH=$PWD .venv/bin/python bench/bench_seed_ensemble.py --work /tmp/seeds14/shift4 \\
        --seed 4 [--first old-default] [--second-seed 104]

The ensemble costs twice the training and twice the forward passes of one model.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_shift import held_out_sets, run_variant  # noqa: E402


def lay_out_split(run: Path, data: Path, out: Path) -> Path:
    """``out/{train,val,test}/<class>/<file>``: links to ``data``'s images, as ``run``'s
    split.csv put them."""
    with open(run / "split.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            target = out / row["split"] / row["label"] / Path(row["path"]).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to((data / row["path"]).resolve())
    return out


def _probs(run, items) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``run``'s calibrated probabilities, labels and paths of the ``items`` it scored, in path
    order (every run's scores in one order)."""
    from imgclf.evaluation.calibration import read_temperature
    from imgclf.evaluation.inference import score_items

    temperature = read_temperature(run.path)
    s = score_items(run.model, items, run.image_size, run.config.batch_size, temperature)
    order = np.argsort(s.paths)
    return s.probs[order], s.labels[order], [s.paths[i] for i in order]


def ensemble_lines(first, second, sets: dict[str, Path], seed: int) -> None:
    """Print bench_shift's lines for the average of ``first``'s and ``second``'s probabilities."""
    from imgclf.evaluation.evaluate import _items  # a run's test split, or a folder's images

    print(f"== ens2 (two seeds averaged): model two at 128 px, seed {seed}; training 0 CPU s")
    for label, folder in {"internal": None, **sets}.items():
        items = _items(first, folder)[0]
        p1, y1, _ = _probs(first, items)
        p2, y2, _ = _probs(second, items)
        if not np.array_equal(y1, y2):
            raise SystemExit(f"the two runs read different labels on {label}")
        accuracy = float(np.mean(((p1 + p2) / 2).argmax(1) == y1))
        head = "-- tta none: internal    " if folder is None else f"{label:<18}"
        print(f"{head} n={len(y1)}  accuracy {accuracy:.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path, help="a bench_shift --work folder")
    parser.add_argument("--seed", type=int, required=True, help="the seed that folder ran with")
    parser.add_argument("--first", default="old-default", help="the first run under runs/")
    parser.add_argument("--second-seed", type=int, help="default: --seed + 100")
    args = parser.parse_args()
    import imgclf

    tmp, second_seed = args.work, args.second_seed or args.seed + 100
    sets = held_out_sets(tmp, args.seed)
    first_dir, second_dir = tmp / "runs" / args.first, tmp / "runs" / "seed2"
    if not second_dir.is_dir():
        shutil.rmtree(tmp / "presplit", ignore_errors=True)
        presplit = lay_out_split(first_dir, tmp / "train", tmp / "presplit")
        os.environ["IMGCLF_CACHE"] = str(tmp / "cache" / "seed2")
        options = {"seed": second_seed, "report": False, "verbose": 0, "name": "seed2"}
        imgclf.train(presplit, test_dir=str(sets["later"]), out=str(tmp / "runs"), **options)
        shutil.rmtree(tmp / "cache" / "seed2", ignore_errors=True)
    run_variant("seed2", str(second_dir), sets, tmp, args.seed, ["none"])
    ensemble_lines(imgclf.load_run(first_dir), imgclf.load_run(second_dir), sets, args.seed)


if __name__ == "__main__":
    main()
