"""Batch-prediction benchmark: ``imgclf predict`` against a plain Keras loop (images/second, higher is better).

On each folder, with the same run's model (the default EfficientNet-Lite0 unless ``--run`` names another):

* ``keras``   what the course notes do: ``keras.saving.load_model`` + ``image_dataset_from_directory(
              folder, image_size=…, batch_size=32, shuffle=False)`` + ``model.predict`` (model load included);
* ``imgclf``  ``imgclf.load_run(run).predict(folder)``, as ``imgclf predict RUN folder`` runs it: the prediction
              core (tf.data decode in parallel, JPEGs in the graph at a DCT scale, prefetch) with top-k
              and the run's temperature (model load included).

Folders: the shared sign-language photos and ``--camera-images`` camera-size JPEGs (4000×3000, made
from the same photos in a temporary folder, deleted afterwards). Without ``--run`` a default-model
run is trained once on ``demo/sign-digits`` into a temporary folder (a few minutes on 2 cores).

    .venv/bin/python bench/bench_predict.py [--run RUN] [--data DIR] [--camera-images N] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import DEFAULT_DATA, REPO, make_camera_folder  # noqa: E402


def count_images(folder: Path) -> int:
    return sum(1 for f in folder.rglob("*") if f.suffix.lower() in (".jpg", ".jpeg", ".png"))


def keras_loop(run_dir: Path, folder: Path, image_size: int) -> int:
    import keras

    import imgclf.models.layers  # noqa: F401  (custom layers)

    model = keras.saving.load_model(run_dir / "model.keras")
    ds = keras.utils.image_dataset_from_directory(folder, labels=None, image_size=(image_size, image_size), batch_size=32, shuffle=False, verbose=False)
    return len(model.predict(ds, verbose=0))


def imgclf_predict(run_dir: Path, folder: Path) -> int:
    import imgclf

    predictions = imgclf.load_run(run_dir).predict(folder)
    return sum(p.ok for p in predictions)


def measure(name: str, fn, repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        t = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t))
    best = max(rates)
    print(f"  {name:<7} {best:8.1f} images/s  (runs: {', '.join(f'{r:.1f}' for r in rates)}; {n} images)", flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run folder (default: train the default model on demo/sign-digits)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--camera-images", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    import imgclf

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run
        if run_dir is None:
            print("training the default model on demo/sign-digits …", flush=True)
            run_dir = Path(imgclf.train(REPO / "demo" / "sign-digits", out=tmp, name="bench", verbose=0).run_dir)
        size = imgclf.load_run(run_dir).image_size
        print(f"run {run_dir} (model {imgclf.load_run(run_dir).config.model}, {size} px), {os.cpu_count()} CPUs", flush=True)
        camera = make_camera_folder(args.data, Path(tmp) / "camera", args.camera_images)
        for label, folder in (("sign-language photos", args.data), ("camera JPEGs 4000x3000", camera)):
            print(f"{label}: {folder} ({count_images(folder)} images)", flush=True)
            k = measure("keras", lambda: keras_loop(run_dir, folder, size), args.repeat)
            i = measure("imgclf", lambda: imgclf_predict(run_dir, folder), args.repeat)
            print(f"  imgclf / keras = {i / k:.2f}x", flush=True)


if __name__ == "__main__":
    main()
