"""Training benchmark: what a competent user writes from the keras.io transfer-learning guide vs imgclf.

All methods are measured in one process, one after another, on the same data and scored on the
same held-out test images (imgclf's own split of the folder, written before anything trains):

* ``baseline`` — the keras.io guide by hand: the same EfficientNet-Lite0 backbone frozen,
  ``image_dataset_from_directory`` at 224 px, RandomFlip + RandomRotation layers, dropout + dense
  head, Adam 1e-3, 10 epochs (model selection on a validation_split of the train+val images);
* ``default`` — ``imgclf.train(DATA)`` with every default, a cold feature cache;
* ``time1m`` — ``imgclf.train(DATA, time_budget="1m")``, a cold feature cache;
* ``cnn`` — ``imgclf.train(DATA, model="cnn")``;
* ``notes_cnn`` — the notes' from-scratch network (Conv2D/MaxPooling2D ×3, Flatten, Dense 512) at
  256 px for 20 epochs, scored on the same test images.

Run: ``.venv/bin/python bench/bench_training.py [--data DIR] [--only baseline,default,time1m]``.
Prints one ``RESULT`` line per method and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "sign-language-digits"
METHODS = ("baseline", "default", "time1m", "cnn", "notes_cnn")


def held_out_split(data: Path, workdir: Path):
    """imgclf's split of ``data``, materialised as symlink folders: trainval/<class>, test/<class>."""
    from imgclf.config import TrainConfig
    from imgclf.data.prepare import prepare_training_data
    from imgclf.data.scan import scan_folder

    scanned = scan_folder(data)
    scanned, items, _ = prepare_training_data(scanned, TrainConfig(data=str(data)), verbose=0)
    for item in items:
        part = "test" if item.split == "test" else "trainval"
        target = workdir / part / scanned.classes[item.label] / Path(item.path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(Path(item.path).resolve())
    return workdir / "trainval", workdir / "test", scanned.classes


def _keras_test_accuracy(model, test_dir: Path, size: int) -> float:
    import keras

    test = keras.utils.image_dataset_from_directory(test_dir, image_size=(size, size), shuffle=False, verbose=False)
    return float(model.evaluate(test, verbose=0)[1])


def baseline(trainval: Path, test_dir: Path, num_classes: int, seed: int) -> float:
    """The keras.io transfer-learning guide, as a user types it (the backbone is imgclf's built-in file,
    the only ImageNet weights available offline)."""
    import keras

    from imgclf.models.backbones import BUILTIN_WEIGHTS

    size = 224
    train, val = keras.utils.image_dataset_from_directory(
        trainval, validation_split=0.2, subset="both", seed=seed, image_size=(size, size), batch_size=32, verbose=False
    )
    base_model = keras.saving.load_model(BUILTIN_WEIGHTS)
    base_model.trainable = False
    augmentation = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1)])
    inputs = keras.Input((size, size, 3))
    x = augmentation(inputs)
    x = base_model(x, training=False)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, validation_data=val, epochs=10, verbose=0)
    return _keras_test_accuracy(model, test_dir, size)


def notes_cnn(trainval: Path, test_dir: Path, num_classes: int, seed: int) -> float:
    """The notes' from-scratch recipe: rescale, three Conv2D/MaxPooling2D blocks, Flatten, Dense, 20 epochs at 256 px."""
    import keras

    size = 256
    train, val = keras.utils.image_dataset_from_directory(
        trainval, validation_split=0.2, subset="both", seed=seed, image_size=(size, size), batch_size=32, verbose=False
    )
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            layers.Rescaling(1.0 / 255),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, validation_data=val, epochs=20, verbose=0)
    return _keras_test_accuracy(model, test_dir, size)


def imgclf_run(data: Path, out: Path, **options) -> float:
    import imgclf

    return imgclf.train(data, out=str(out), verbose=0, **options).metrics.accuracy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--only", default=",".join(METHODS[:3]), help=f"comma list of {', '.join(METHODS)}")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; expected some of {', '.join(METHODS)}")
    if not args.data.is_dir():
        parser.error(f"data folder {str(args.data)!r} does not exist")

    with tempfile.TemporaryDirectory(prefix="imgclf-bench-") as tmp:
        work = Path(tmp)
        os.environ["IMGCLF_CACHE"] = str(work / "cache")  # cold feature cache: nothing carried over
        trainval, test_dir, classes = held_out_split(args.data, work / "split")
        n_test = sum(1 for _ in test_dir.rglob("*") if _.is_file())
        print(f"data {args.data} | {len(classes)} classes | {n_test} test images | load {os.getloadavg()[0]:.2f}", flush=True)
        results: dict[str, tuple[float, float]] = {}
        for method in methods:
            os.environ["IMGCLF_CACHE"] = str(work / f"cache-{method}")
            t = time.perf_counter()
            if method == "baseline":
                acc = baseline(trainval, test_dir, len(classes), args.seed)
            elif method == "notes_cnn":
                acc = notes_cnn(trainval, test_dir, len(classes), args.seed)
            elif method == "default":
                acc = imgclf_run(args.data, work / "runs")
            elif method == "time1m":
                acc = imgclf_run(args.data, work / "runs", time_budget="1m")
            else:
                acc = imgclf_run(args.data, work / "runs", model="cnn")
            results[method] = (time.perf_counter() - t, acc)
            print(f"RESULT method={method} seconds={results[method][0]:.1f} test_accuracy={acc:.4f} load={os.getloadavg()[0]:.2f}", flush=True)
        if "baseline" in results:
            base_s, base_acc = results["baseline"]
            for method, (secs, acc) in results.items():
                print(f"RATIO {method}: time {secs / base_s:.2f}x baseline, accuracy {acc - base_acc:+.4f} vs baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
