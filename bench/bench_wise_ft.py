"""Weight-space ensembles of the head stage and the fine-tuned model (WiSE-FT: Wortsman et al.,
"Robust fine-tuning of zero-shot models", CVPR 2022) on bench_shift's held-out sets: does a model
halfway between the linear probe and the fine-tuned network hold up better off the split?

The default recipe trains a head on the frozen backbone, then fine-tunes the backbone's top with it.
This takes a ``--work`` folder of an earlier ``bench_shift.py`` call (its sets, and the fine-tuned
run ``--ft``), trains the head stage alone at the same seed (``fine_tune='none'``: the same split,
head and epochs, its own cold feature cache), and for each ``--alpha`` A writes a copy of the
fine-tuned run whose weights are ``(1 - A) * head stage + A * fine-tuned`` (every weight; below the
fine-tuned top they are the same in both, and BatchNorm's statistics stay frozen in both). Every
model is then evaluated on the internal test split and every held-out set, printed in bench_shift's
lines, so ``shift_summary.py`` pools these logs with bench_shift's::

    PYTHONPATH=$PWD .venv/bin/python bench/bench_wise_ft.py --work /tmp/seeds14/shift4 --seed 4 \\
        [--ft old-default] [--alpha 0.5 --alpha 0.7]

``A = 1`` is the fine-tuned run itself and ``A = 0`` the head stage (``lp``). The copies keep the
fine-tuned run's calibration temperature (accuracy does not depend on it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_shift import held_out_sets, run_variant  # noqa: E402


def interpolated(lp_run: Path, ft_run: Path, alpha: float, out: Path) -> Path:
    """A copy of ``ft_run`` (without its evaluations) at ``out`` whose model.keras holds
    ``(1 - alpha) * lp + alpha * ft`` for every weight."""
    import keras

    shutil.copytree(ft_run, out, ignore=shutil.ignore_patterns("evaluations", "engines"))
    lp = keras.saving.load_model(lp_run / "model.keras", compile=False)
    ft = keras.saving.load_model(ft_run / "model.keras", compile=False)
    a, b = lp.get_weights(), ft.get_weights()
    if [w.shape for w in a] != [w.shape for w in b]:
        raise SystemExit(f"{lp_run} and {ft_run} hold different architectures")
    ft.set_weights([(1 - alpha) * x + alpha * y for x, y in zip(a, b, strict=True)])
    ft.save(out / "model.keras")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path, help="a bench_shift --work folder")
    parser.add_argument("--seed", type=int, required=True, help="the seed that folder ran with")
    parser.add_argument("--ft", default="old-default", help="the fine-tuned run under runs/")
    parser.add_argument("--alpha", type=float, action="append", default=[])
    args = parser.parse_args()
    import imgclf

    tmp, alphas = args.work, args.alpha or [0.5]
    sets = held_out_sets(tmp, args.seed)
    lp = tmp / "runs" / "lp"
    if not lp.is_dir():
        os.environ["IMGCLF_CACHE"] = str(tmp / "cache" / "lp")
        imgclf.train(
            tmp / "train",
            test_dir=str(sets["later"]),
            out=str(tmp / "runs"),
            name="lp",
            seed=args.seed,
            fine_tune="none",
            report=False,
            verbose=0,
        )
        shutil.rmtree(tmp / "cache" / "lp", ignore_errors=True)
    ft = tmp / "runs" / args.ft
    run_variant("lp", str(lp), sets, tmp, args.seed, ["none"])
    for alpha in alphas:
        out = tmp / "runs" / f"wise{alpha:g}"
        if not out.is_dir():
            interpolated(lp, ft, alpha, out)
        run_variant(f"wise{alpha:g}", str(out), sets, tmp, args.seed, ["none"])


if __name__ == "__main__":
    main()
