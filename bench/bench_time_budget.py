"""Is ``--time`` a promise at any data size? ``imgclf train DATA --time B`` end to end, timed.

Cases (``--only``, comma list):

* ``synth2k`` / ``synth20k`` — 2,000 / 20,000 generated 32 px PNGs, 10 classes (a coloured shape per
  class on a noisy background, position, size and colours jittered), written to a temporary folder
  (never the repo), trained with ``--time 3m`` (``--budget``);
* ``digits45`` — ``../shared/datasets/sign-language-digits`` with ``--time 45s``.

Each case runs ``python -m imgclf train DATA --time B --out TMP`` as a new user would (a fresh
process, report included, a cold feature cache in a temporary ``$IMGCLF_CACHE``) and prints one
``RESULT`` line: budget, wall seconds, the child's CPU seconds (user + sys), the load average before
and after, the test accuracy and the plan the run recorded in ``timings.json``.

Run: ``.venv/bin/python bench/bench_time_budget.py [--only synth2k,synth20k,digits45] [--budget
3m]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT.parent / "shared" / "datasets" / "sign-language-digits"
CASES = ("synth2k", "synth20k", "digits45")


def make_synthetic(
    folder: Path, n_images: int, classes: int = 10, size: int = 32, seed: int = 0
) -> Path:
    """``n_images`` PNGs of ``size`` px in ``classes`` class folders: class k is a filled shape (k %
    5 of square, disc, cross, triangle, stripes) in one of two colour families (k // 5), jittered in
    position, size and colour, on a noisy background — distinct enough to learn, not trivial.

    Args:
        folder: where to write (created).
        n_images: total images, split evenly over the classes.
        classes: number of classes (at most 10).
        size: side in pixels.
        seed: random seed.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(classes):
        (folder / f"class{k}").mkdir(parents=True, exist_ok=True)
        for i in range(n_images // classes):
            img = rng.integers(0, 90, (size, size, 3)).astype(np.float32)
            cx, cy = rng.uniform(0.35, 0.65, 2) * size
            r = rng.uniform(0.18, 0.3) * size
            shape = k % 5
            if shape == 0:
                mask = (abs(xx - cx) < r) & (abs(yy - cy) < r)
            elif shape == 1:
                mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
            elif shape == 2:
                mask = ((abs(xx - cx) < r / 3) & (abs(yy - cy) < r)) | (
                    (abs(yy - cy) < r / 3) & (abs(xx - cx) < r)
                )
            elif shape == 3:
                mask = (yy - cy < r) & (yy - cy > -r) & (abs(xx - cx) < (yy - cy + r) / 2)
            else:
                mask = ((xx // 4) % 2 == 0) & (abs(xx - cx) < r) & (abs(yy - cy) < r)
            base = np.array([220, 60, 40] if k < 5 else [40, 90, 220], np.float32)
            img[mask] = np.clip(base + rng.normal(0, 25, 3), 0, 255)
            Image.fromarray(img.astype(np.uint8)).save(folder / f"class{k}" / f"{i:05d}.png")
    return folder


def _run_case(name: str, data: Path, budget: str, work: Path, logs: Path) -> dict:
    cache = work / f"cache-{name}"
    env = {
        **os.environ,
        "IMGCLF_CACHE": str(cache),
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    out = work / f"runs-{name}"
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "imgclf", "train", str(data), "--time", budget, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t
    (logs / f"{name}.log").write_text(proc.stdout + proc.stderr)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [ln for ln in proc.stdout.splitlines() if "time budget" in ln or "--time" in ln]
    result = {
        "case": name,
        "budget": budget,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "rc": proc.returncode,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    runs = sorted(out.glob("*/metrics.json"))
    if runs:
        metrics = json.loads(runs[0].read_text())
        timings = json.loads((runs[0].parent / "timings.json").read_text())
        result.update(
            accuracy=metrics.get("accuracy"),
            train_seconds=metrics.get("train_seconds"),
            stages=timings.get("stages"),
        )
        plan = timings.get("plan", {})
        result["plan"] = plan.get("line")
        # what ran against what was planned (epochs per stage), and why they differ
        result["epochs"] = {k: plan.get(k) for k in ("planned_epochs", "ran_epochs", "why")}
    else:
        result["error"] = (proc.stderr or proc.stdout)[-2000:]
    print("\n".join(lines), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(CASES))
    parser.add_argument("--budget", default="3m", help="budget of the synthetic cases")
    parser.add_argument("--digits-budget", default="45s")
    parser.add_argument(
        "--keep", help="generate the synthetic sets here (kept) instead of a temporary folder"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imgclf-bench-time-") as tmp:
        work = Path(tmp)
        gen = Path(args.keep) if args.keep else work
        for name in args.only.split(","):
            if name == "digits45":
                data, budget = DIGITS, args.digits_budget
            else:
                n = {"synth2k": 2000, "synth20k": 20000}[name]
                data, budget = gen / name, args.budget
                if not data.exists():
                    t = time.perf_counter()
                    make_synthetic(data, n, seed=n)
                    print(f"generated {n} images in {time.perf_counter() - t:.0f}s", flush=True)
            result = _run_case(name, data, budget, work, gen)
            print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
