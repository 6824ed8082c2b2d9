"""Batch-prediction benchmark: a plain Keras loop, ``imgclf predict --engine keras`` and ``imgclf
predict`` (auto: the run's TFLite copy), side by side in one run (images/second, higher is better).

On each folder, with the same run's model (the default EfficientNet-Lite0 unless ``--run`` names
another):

* ``keras``         what the course notes do: ``keras.saving.load_model`` +
                    ``image_dataset_from_directory( folder, image_size=…, batch_size=32,
                    shuffle=False)`` + ``model.predict``;
* ``imgclf-keras``  ``imgclf.load_run(run, engine="keras").predict(folder)``: the prediction core
                    (tf.data decode in parallel, JPEGs decoded in the graph at a DCT scale,
                    prefetch) with top-k and the run's temperature, forward pass in Keras;
* ``imgclf``        ``imgclf.load_run(run).predict(folder)`` as ``imgclf predict RUN folder`` runs
                    it (engine auto): the run's cached TFLite float32 copy (XNNPACK), one
                    interpreter with one thread per core. The one-time conversion + parity check is
                    timed separately, first.

Every method loads the model itself (included in its time). Methods alternate within each repeat;
each line gives the best rate, every run's rate, and process CPU milliseconds per image (user + sys,
all threads) — on a shared machine the CPU time per image is the steadier number. ``--levers`` adds
the parts measured alone on the first folder: decode only (the tf.data pipeline without a model),
the forward pass only (Keras ``predict_on_batch``, TFLite at 1 and 2 threads, batch sizes 16/32/64).
Then (unless ``--no-phases``) one fresh ``imgclf predict RUN PHOTOS`` process timed phase by phase
(``predict_phases.py``: start-up, first batch, steady rate, tail), and one ``TARGET …: MET|NOT MET``
line per speed target of issue 11 (≥ 200 images/s on the sign-language photos, ≥ 3× the Keras loop
on camera JPEGs; best of ``--repeat`` runs, model load included, TensorFlow already imported).

Folders: the shared sign-language photos and ``--camera-images`` camera-size JPEGs (4000×3000, made
from the same photos in a temporary folder, deleted afterwards). Without ``--run`` a default-model
run is trained once on ``demo/sign-digits`` into a temporary folder (a few minutes on 2 cores); a
given ``--run`` is copied (with its cached TFLite copy, if any) to a temporary folder first, so its
own folder is not touched.

    .venv/bin/python bench/bench_predict.py [--run RUN] [--data DIR] [--camera-images N] [--repeat
    N] [--levers] [--no-phases]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import DEFAULT_DATA, REPO, make_camera_folder  # noqa: E402
from predict_phases import phases  # noqa: E402


def count_images(folder: Path) -> int:
    return sum(1 for f in folder.rglob("*") if f.suffix.lower() in (".jpg", ".jpeg", ".png"))


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def keras_loop(run_dir: Path, folder: Path, image_size: int) -> int:
    import keras

    import imgclf.models.layers  # noqa: F401  (custom layers)

    model = keras.saving.load_model(run_dir / "model.keras")
    ds = keras.utils.image_dataset_from_directory(
        folder,
        labels=None,
        image_size=(image_size, image_size),
        batch_size=32,
        shuffle=False,
        verbose=False,
    )
    return len(model.predict(ds, verbose=0))


def imgclf_predict(run_dir: Path, folder: Path, engine: str, batch_size: int = 32) -> int:
    import imgclf

    run = imgclf.load_run(run_dir, engine)
    return sum(p.ok for p in run.predict(folder, batch_size=batch_size))


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def measure(name: str, fn, repeat: int = 1) -> float:
    """Best images/s of ``repeat`` calls of ``fn`` (which returns the images it did); its CPU ms per
    image goes to ``CPU_MS[name]`` (a list, one entry per call of measure)."""
    rates, cpu = [], []
    for _ in range(repeat):
        start_load = load()
        t, c = time.perf_counter(), cpu_seconds()
        n = fn()
        wall = time.perf_counter() - t
        rates.append(n / wall)
        cpu.append((cpu_seconds() - c) / n * 1000)
    print(
        f"  {name:<13} {max(rates):8.1f} images/s  (runs: {', '.join(f'{r:.1f}' for r in rates)}; "
        f"{n} images; "
        f"CPU {', '.join(f'{c:.1f}' for c in cpu)} ms/image; load {start_load} at the last start)",
        flush=True,
    )
    CPU_MS.setdefault(name, []).append(cpu[rates.index(max(rates))])
    return max(rates)


CPU_MS: dict[str, list[float]] = {}


def levers(run_dir: Path, folder: Path, size: int) -> None:
    """Decode alone and the forward pass alone, per engine, thread count and batch size."""
    import numpy as np

    import imgclf
    from imgclf.data.decode import DecodeLog
    from imgclf.data.pipeline import batched, decoded_dataset
    from imgclf.data.scan import ImageItem
    from imgclf.engines.keras_engine import KerasEngine
    from imgclf.engines.tflite_engine import TFLiteEngine
    from imgclf.serving.inputs import expand_paths

    items = [ImageItem(f, -1) for f in expand_paths([folder])]
    print(f"levers on {folder.name} ({len(items)} images):", flush=True)
    measure(
        "decode only",
        lambda: sum(
            int(x.shape[0])
            for x, _ in batched(decoded_dataset(items, size, DecodeLog(), cache=False), 32)
        ),
    )
    run = imgclf.load_run(run_dir)
    tflite = run.engine.path if isinstance(run.engine, TFLiteEngine) else None
    x = np.random.default_rng(0).integers(0, 256, (64, size, size, 3)).astype(np.float32)
    engines = {"keras": KerasEngine(run.model)}
    if tflite is not None:
        engines |= {
            "tflite-1thr": TFLiteEngine(tflite, threads=1),
            f"tflite-{os.cpu_count()}thr": TFLiteEngine(tflite),
        }
    for batch in (16, 32, 64):
        for name, engine in engines.items():
            engine(x[:batch])  # warm-up: trace / allocate this shape

            reps = max(1, 512 // batch)

            def forward(engine=engine, batch=batch, reps=reps) -> int:
                for _ in range(reps):
                    engine(x[:batch])
                return reps * batch

            measure(f"{name} b{batch}", forward)


def verdict(label: str, best: dict[str, float], cpu_ms: float) -> str:
    """The one-line verdict on the issue's target for this folder (see :data:`TARGETS`)."""
    kind, goal = TARGETS["camera" if label.startswith("camera") else "photos"]
    got = best["imgclf"] if kind == "rate" else best["imgclf"] / best["keras"]
    text = (
        f"{got:.1f} images/s"
        if kind == "rate"
        else f"{got:.2f}x ({best['imgclf']:.1f} vs {best['keras']:.1f} images/s)"
    )
    goal_text = (
        f">= {goal:.0f} images/s" if kind == "rate" else f">= {goal:.0f}x the plain Keras loop"
    )
    met = "MET" if got >= goal else "NOT MET"
    return (
        f"TARGET {label}, `imgclf predict` {goal_text} (model load included): {met} — {text}, "
        f"CPU {cpu_ms:.1f} ms/image, load {load()}"
    )


TARGETS = {"photos": ("rate", 200.0), "camera": ("ratio", 3.0)}  # issue 11's speed targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run",
        type=Path,
        help="a run folder (default: train the default model on demo/sign-digits)",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--camera-images", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--levers", action="store_true", help="also time decode alone and the forward pass alone"
    )
    parser.add_argument(
        "--no-phases",
        action="store_true",
        help="skip the fresh `imgclf predict` process timed phase by phase",
    )
    args = parser.parse_args()
    import imgclf

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        if args.run is None:
            print("training the default model on demo/sign-digits …", flush=True)
            run_dir = Path(
                imgclf.train(
                    REPO / "demo" / "sign-digits", out=tmp, name="bench", verbose=0
                ).run_dir
            )
        else:
            shutil.copytree(
                args.run, run_dir
            )  # with its TFLite copy, if it has one (keyed by model.keras)
        run = imgclf.load_run(run_dir)
        print(
            f"run {args.run or run_dir} (model {run.config.model}, {run.image_size} px), "
            f"{os.cpu_count()} CPUs, load {load()}",
            flush=True,
        )
        t, c = time.perf_counter(), cpu_seconds()
        print(
            "  first use (conversion + parity check, or finding the cached copy; "
            f"TensorFlow import included): {type(run.engine).__name__}, "
            f"{time.perf_counter() - t:.1f} s, CPU {cpu_seconds() - c:.1f} s",
            flush=True,
        )
        folders = [("sign-language photos", args.data)]
        if args.camera_images > 0:  # --camera-images 0: the sign-language photos only
            folders.append(
                (
                    "camera JPEGs 4000x3000",
                    make_camera_folder(args.data, Path(tmp) / "camera", args.camera_images),
                )
            )
        verdicts: list[str] = []
        for label, folder in folders:
            print(f"{label}: {folder} ({count_images(folder)} images)", flush=True)
            methods = {
                "keras": lambda folder=folder: keras_loop(run_dir, folder, run.image_size),
                "imgclf-keras": lambda folder=folder: imgclf_predict(run_dir, folder, "keras"),
                "imgclf": lambda folder=folder: imgclf_predict(run_dir, folder, "auto"),
            }
            rates: dict[str, list[float]] = {name: [] for name in methods}
            for _ in range(
                args.repeat
            ):  # alternate the methods, so a load spike hits all of them alike
                for name, fn in methods.items():
                    rates[name].append(measure(name, fn))
            best = {k: max(v) for k, v in rates.items()}
            print(
                f"  best: {', '.join(f'{k} {v:.1f}' for k, v in best.items())} images/s; "
                f"imgclf / keras = {best['imgclf'] / best['keras']:.2f}x",
                flush=True,
            )
            best_cpu = CPU_MS["imgclf"][-args.repeat :][rates["imgclf"].index(best["imgclf"])]
            verdicts.append(verdict(label, best, best_cpu))
        if not args.no_phases:
            phases(run_dir, args.data)
        print("\n".join(verdicts), flush=True)
        if args.levers:
            levers(run_dir, args.data, run.image_size)


if __name__ == "__main__":
    main()
