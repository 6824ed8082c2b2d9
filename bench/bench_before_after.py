"""The same `imgclf train` and `imgclf predict` commands from two revisions of imgclf, side by
side in one run: does a change leave what the user sees — accuracy, run folder, speed — as it was?

Each revision is checked out into a temporary git worktree and run with this checkout's Python
(`PYTHONPATH` points at the worktree, so only imgclf's own code differs). The commands alternate
(before, after, before, after, …) so a load that comes and goes hits both alike; each line gives
wall and CPU seconds of the whole command (CPU: the child's user + system time, which other jobs
on the machine do not inflate) and, for train, the test accuracy and the run folder's file names::

    .venv/bin/python bench/bench_before_after.py --before 4369d86 --after HEAD --per-class 50

Data: ``--per-class`` images of each class of ``../shared/datasets/sign-language-digits`` (linked
into a temporary folder), trained with the default recipe and a fresh feature cache per command;
predict runs on the whole dataset (2,062 photos) with each revision's own run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from common import DIGITS, ROOT, subset, timed_imgclf


def timed(argv: list[str], code: Path, cache: Path) -> tuple[float, float, str]:
    """Run ``python -m imgclf *argv`` with ``code`` first on the path: (wall s, CPU s, stdout)."""
    env = {"PYTHONPATH": str(code), "IMGCLF_CACHE": str(cache)}
    wall, cpu, done = timed_imgclf(argv, env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {code}:\n{done.stderr[-3000:]}")
    return wall, cpu, done.stdout


def worktree(rev: str, where: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev],
        check=True,
        capture_output=True,
    )
    return where


def train_once(label: str, code: Path, data: Path, out: Path, cache: Path) -> dict:
    wall, cpu, _ = timed(["train", str(data), "--out", str(out), "--name", label], code, cache)
    run = sorted(out.glob(f"{label}*"), key=lambda p: p.stat().st_mtime)[-1]
    metrics = json.loads((run / "metrics.json").read_text())
    files = sorted(p.name for p in run.iterdir())
    return {"wall": wall, "cpu": cpu, "accuracy": metrics["accuracy"], "files": files, "run": run}


def predict_once(code: Path, run: Path, cache: Path, engine: str) -> dict:
    argv = ["predict", str(run), str(DIGITS), "--format", "csv", "--engine", engine, "--quiet"]
    wall, cpu, stdout = timed(argv, code, cache)
    rows = stdout.strip().splitlines()[1:]
    return {"wall": wall, "cpu": cpu, "rows": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision of the baseline")
    parser.add_argument("--after", default="HEAD", help="git revision to compare with it")
    parser.add_argument("--per-class", type=int, default=50, help="training images per class")
    parser.add_argument("--repeat", type=int, default=2, help="alternating pairs of each command")
    parser.add_argument("--engine", default="auto", help="imgclf predict --engine")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imgclf-before-after-") as tmp:
        tmp = Path(tmp)
        data = subset(tmp / "data", args.per_class)
        code = {
            "before": worktree(args.before, tmp / "before"),
            "after": worktree(args.after, tmp / "after"),
        }
        try:
            compare(args, code, data, tmp)
        finally:
            for where in code.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)]
                )


def compare(args: argparse.Namespace, code: dict[str, Path], data: Path, tmp: Path) -> None:
    results: dict[str, dict[str, list[dict]]] = {k: {"train": [], "predict": []} for k in code}
    for i in range(args.repeat):
        for label, where in code.items():
            cache = tmp / f"cache-{label}-{i}"
            result = train_once(label, where, data, tmp / "runs", cache)
            results[label]["train"].append(result)
            print(
                f"train   {label:6} #{i + 1}: wall {result['wall']:.1f}s CPU {result['cpu']:.1f}s "
                f"test accuracy {result['accuracy']:.4f}",
                flush=True,
            )
        for label, where in code.items():
            run = results[label]["train"][-1]["run"]
            result = predict_once(where, run, tmp / f"cache-{label}-{i}", args.engine)
            results[label]["predict"].append(result)
            print(
                f"predict {label:6} #{i + 1}: wall {result['wall']:.1f}s CPU {result['cpu']:.1f}s "
                f"{result['rows']} rows",
                flush=True,
            )
    summarise(results)


def summarise(results: dict[str, dict[str, list[dict]]]) -> None:
    for command in ("train", "predict"):
        before = [r["cpu"] for r in results["before"][command]]
        after = [r["cpu"] for r in results["after"][command]]
        ratio = statistics.median(after) / statistics.median(before)
        each = f"after {[round(s, 1) for s in after]} / before {[round(s, 1) for s in before]} s"
        print(f"RESULT {command}: CPU after/before {ratio:.2f}x of the medians ({each})")
    files = {label: set(r["train"][-1]["files"]) for label, r in results.items()}
    print(
        "RESULT run folder: only before "
        f"{sorted(files['before'] - files['after'])}, only after "
        f"{sorted(files['after'] - files['before'])}"
    )


if __name__ == "__main__":
    main()
