"""Where a cold ``imgclf train`` spends its time: one run, one process, a table of phases.

Each phase is timed by wrapping the function that does it (exclusive time: a phase inside another
is taken out of the outer one), in wall seconds and in the process's CPU seconds (user + sys, all
threads), from the process's start:

import (Python, imgclf, TensorFlow) · scan · doctor · split · model build · plan (``--time``
measuring) · augmentation preview · activations (frozen bottom, every view) · features through
the top · head · fine-tuning · test · val scoring (calibration) · calibration + predictions · each
report section (``inside`` is Grad-CAM) · the rest.

Run: ``nice -n 5 .venv/bin/python bench/profile_train.py [--data DIR] [--time 45s] [--seed 42]
[--no-report] [--cprofile 25]``. The feature cache is a fresh temporary folder (cold). With
``--cprofile N`` the run also goes through cProfile and the N most expensive functions (cumulative)
are printed after the table.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

FIRST_LINE = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
from common import DIGITS as DEFAULT_DATA  # noqa: E402 (after the environment is set)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class PhaseClock:
    """Exclusive wall and CPU seconds per phase name, in the order phases first ran."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.stack: list[list] = []  # [name, child wall, child cpu]

    @contextmanager
    def phase(self, name: str):
        frame = [name, 0.0, 0.0]
        self.stack.append(frame)
        wall, cpu = time.perf_counter(), _cpu()
        try:
            yield
        finally:
            self.stack.pop()
            dw, dc = time.perf_counter() - wall, _cpu() - cpu
            self.wall[name] = self.wall.get(name, 0.0) + dw - frame[1]
            self.cpu[name] = self.cpu.get(name, 0.0) + dc - frame[2]
            if self.stack:
                self.stack[-1][1] += dw
                self.stack[-1][2] += dc

    def inside(self, name: str) -> bool:
        return any(frame[0] == name for frame in self.stack)

    def wrap(self, module, attr: str, name) -> None:
        """Time ``module.attr`` as phase ``name`` (a string, or a function of the clock that
        names it at call time)."""
        inner = getattr(module, attr)

        def timed(*args, **kwargs):
            with self.phase(name(self) if callable(name) else name):
                return inner(*args, **kwargs)

        setattr(module, attr, timed)


def instrument(clock: PhaseClock) -> None:
    """Wrap the functions that make up a training run where their callers look them up."""
    from imgclf.data import prepare
    from imgclf.reporting import report, sections
    from imgclf.training import finish, setup, stages, trainer

    clock.wrap(setup, "scan_folder", "scan")
    clock.wrap(prepare, "diagnose", "doctor")
    clock.wrap(setup, "prepare_training_data", "split (prepare minus doctor)")
    clock.wrap(setup, "resolve_model", "model choice")
    clock.wrap(setup, "build_classifier", "model build")
    clock.wrap(trainer, "plan_run", "plan (--time measuring)")
    clock.wrap(trainer, "preview_augmentation", "augmentation preview")
    clock.wrap(stages, "_all_views", "activations (frozen bottom)")
    clock.wrap(trainer, "train_pretrained", "features through the top")
    clock.wrap(stages, "_head_stage", "head")
    clock.wrap(trainer, "train_scratch", "train (from scratch)")

    def fit_name(c: PhaseClock) -> str:
        return "head" if c.inside("head") else "fine-tuning"

    clock.wrap(stages, "fit_arrays", fit_name)
    clock.wrap(stages, "fit_dataset", fit_name)
    clock.wrap(finish, "_best_model", "load best model")
    clock.wrap(finish, "_test", "test")
    clock.wrap(finish, "score_items", lambda c: "test" if c.inside("test") else "val scoring")
    clock.wrap(finish, "finish_run", "calibration + predictions")
    clock.wrap(report, "build_report", "report: rest (render, write)")
    for name in (
        "data_section",
        "training_section",
        "results_section",
        "mistakes_section",
        "calibration_section",
    ):
        clock.wrap(sections, name, f"report: {name.removesuffix('_section')}")
    clock.wrap(report, "inside_section", "report: inside (Grad-CAM)")


def print_table(clock: PhaseClock, total_wall: float, total_cpu: float) -> None:
    rest_w = total_wall - sum(clock.wall.values())
    rest_c = total_cpu - sum(clock.cpu.values())
    rows = [*clock.wall.items(), ("rest (training loop glue, saving, ...)", rest_w)]
    cpus = {**clock.cpu, "rest (training loop glue, saving, ...)": rest_c}
    print(f"\n{'phase':<40} {'wall s':>8} {'share':>6} {'CPU s':>8} {'share':>6}")
    for name, wall in rows:
        cpu = cpus[name]
        print(
            f"{name:<40} {wall:8.1f} {wall / total_wall:6.1%} {cpu:8.1f} "
            f"{cpu / max(total_cpu, 1e-9):6.1%}"
        )
    print(f"{'total (from the process start)':<40} {total_wall:8.1f} {1:6.1%} {total_cpu:8.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--time", default=None, help="--time budget such as 45s (default: none)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {str(args.data)!r}: not a folder")
    tmp = tempfile.TemporaryDirectory(prefix="imgclf-profile-")
    os.environ["IMGCLF_CACHE"] = str(Path(tmp.name) / "cache")  # cold feature cache
    clock = PhaseClock()
    load = os.getloadavg()
    with clock.phase("import (Python, imgclf, TensorFlow)"):
        import keras  # noqa: F401
        import tensorflow  # noqa: F401

        import imgclf
        from imgclf.runtime import process_started

    instrument(clock)
    options = {"time_budget": args.time, "report": not args.no_report, "seed": args.seed}
    profiler = None
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    result = imgclf.train(args.data, out=str(Path(tmp.name) / "runs"), verbose=1, **options)
    if profiler is not None:
        profiler.disable()
    started = process_started()
    total_wall, total_cpu = time.perf_counter() - started, _cpu()
    # Python's own start, before this file's first line, counts as import
    clock.wall["import (Python, imgclf, TensorFlow)"] += FIRST_LINE - started
    print_table(clock, total_wall, total_cpu)
    print(
        f"RESULT data={args.data.name} time={args.time} seed={args.seed} "
        f"test_accuracy={result.metrics.accuracy:.4f} wall={total_wall:.1f} "
        f"cpu={total_cpu:.1f} load={load[0]:.2f}->{os.getloadavg()[0]:.2f}"
    )
    if profiler is not None:
        import pstats

        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.cprofile)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
