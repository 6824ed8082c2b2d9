"""Where the time of one ``imgclf predict RUN FOLDER`` process goes: start-up, first batch, steady
rate, tail.

Runs ``imgclf predict RUN FOLDER -q -o OUT.csv`` as a fresh Python process (this file re-run with
``--child``), which stamps the wall clock and its own CPU time at: Python ready; ``import
tensorflow`` (which imports Keras 3 and, through Keras' scikit-learn wrapper, scikit-learn and
SciPy); the imgclf modules ``predict`` uses; the engine ready (run folder read, ``model.keras``
hashed to find the cached TFLite copy, interpreter made); the first batch out; the last batch out;
the output closed; and the parent stamps the process's exit (the program's own quick one,
imgclf.runtime.exit_now). Steady rate = images after the first batch / time between first and last
batch.

    .venv/bin/python bench/predict_phases.py RUN FOLDER [--engine auto|tflite|keras]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAMPS = ("python", "tensorflow", "imgclf", "engine", "first_batch", "last_batch", "written")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(argv: list[str]) -> int:
    """``imgclf predict`` with stamps; prints them as one ``PHASES {json}`` line on stderr."""
    stamps: dict = {"python": (time.time(), _cpu())}

    def stamp(name: str) -> None:
        stamps.setdefault(name, (time.time(), _cpu()))

    import tensorflow  # noqa: F401  (timed apart: imgclf would import it anyway)

    stamp("tensorflow")
    import imgclf.serving.commands
    import imgclf.serving.export  # noqa: F401
    from imgclf import cli
    from imgclf.runtime import exit_now
    from imgclf.serving.predictor import Run

    stamp("imgclf")
    engine_for_job, iter_predict = Run.engine_for_job, Run.iter_predict

    def timed_engine(self, images=None):
        engine = engine_for_job(self, images)
        stamp("engine")
        stamps.setdefault("engine_type", type(engine).__name__)
        return engine

    def timed_iter(self, *args, **kwargs):
        n = 0
        for chunk in iter_predict(self, *args, **kwargs):
            n += len(chunk)
            stamp("first_batch")
            stamps.setdefault("n_first", n)
            yield chunk
        stamp("last_batch")
        stamps["n"] = n

    from imgclf.models import loading

    load_model_file = loading.load_model_file

    def timed_load(*args, **kwargs):
        stamps["keras_model_loaded"] = True
        return load_model_file(*args, **kwargs)

    def timed_exit(rc: int) -> int:  # the program's own quick exit, after the stamps are out
        stamp("written")
        print("PHASES " + json.dumps(stamps), file=sys.stderr, flush=True)
        return exit_now(rc)

    Run.engine_for_job, Run.iter_predict, loading.load_model_file = (
        timed_engine,
        timed_iter,
        timed_load,
    )
    cli.exit_now = timed_exit
    sys.argv = ["imgclf", "predict", *argv]
    return cli.main()  # as the `imgclf` program runs it (argv from the command line)


def phases(run: Path, folder: Path, engine: str = "auto") -> dict:
    """Run one ``imgclf predict`` process and print where its time went; returns the numbers.

    Args:
        run: the run folder.
        folder: the images.
        engine: ``--engine``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="2",
            PYTHONPATH=os.pathsep.join(
                [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
            ),
        )
        command = [
            sys.executable,
            __file__,
            "--child",
            str(run),
            str(folder),
            "-q",
            "-o",
            str(Path(tmp) / "out.csv"),
            "--engine",
            engine,
        ]
        load, before = os.getloadavg()[0], resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        done = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
        end = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    lines = [line for line in done.stderr.splitlines() if line.startswith("PHASES ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"imgclf predict failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    s = json.loads(lines[0][len("PHASES ") :])
    n, n_first = s["n"], s["n_first"]
    keras = "loaded" if s.get("keras_model_loaded") else "not loaded"
    print(
        f"one `imgclf predict {run} {folder}` process ({n} images, engine "
        f"{s['engine_type']}, Keras model {keras}, load {load:.1f} at the start):",
        flush=True,
    )
    prev_t, prev_c = t0, 0.0
    for name in STAMPS:
        t, c = s[name]
        print(
            f"  {name:<12} at {t - t0:6.2f} s  (+{t - prev_t:5.2f} s wall, +{c - prev_c:5.2f} "
            "s CPU)",
            flush=True,
        )
        prev_t, prev_c = t, c
    print(
        f"  {'exit':<12} at {end - t0:6.2f} s  (+{end - prev_t:5.2f} s wall); process CPU "
        f"{cpu:.1f} s = {cpu / n * 1000:.2f} ms/image",
        flush=True,
    )
    (first, c_first), (last, c_last) = s["first_batch"], s["last_batch"]
    steady = (n - n_first) / (last - first)
    steady_cpu = (c_last - c_first) / (n - n_first) * 1000
    total = n / (end - t0)
    after_import = n / (end - s["tensorflow"][0])
    print(
        f"  whole process {total:.1f} images/s; after `import tensorflow` "
        f"{after_import:.1f} images/s; steady {steady:.1f} images/s at {steady_cpu:.2f} "
        "ms CPU/image",
        flush=True,
    )
    return {
        "total": total,
        "after_import": after_import,
        "steady": steady,
        "steady_cpu_ms": steady_cpu,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        sys.exit(child(sys.argv[2:]))
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--engine", default="auto")
    args = parser.parse_args()
    phases(args.run, args.folder, args.engine)
