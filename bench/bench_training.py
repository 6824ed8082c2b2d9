"""Training benchmark: what a competent user writes from the keras.io transfer-learning guide vs
imgclf.

All methods are measured in one process, one after another, on the same data and scored on the
same held-out test images (imgclf's own split of the folder, written before anything trains):

* ``baseline`` — the keras.io guide by hand: the same EfficientNet-Lite0 backbone frozen,
  ``image_dataset_from_directory`` at 224 px, RandomFlip + RandomRotation layers, dropout + dense
  head, Adam 1e-3, 10 epochs (model selection on a validation_split of the train+val images);
* ``expert`` — an expert's hand-written Lite0 fine-tuning script (``bench/expert_finetune.py``: 128
  px, 3 head epochs, 6 fine-tuning epochs from block8), on imgclf's own train/val/test split;
* ``default`` — ``imgclf.train(DATA)`` with every default, a cold feature cache;
* ``time1m`` / ``time45s`` — ``imgclf.train(DATA, time_budget="1m")`` (``"45s"``), a cold feature
  cache;
* ``cnn`` — ``imgclf.train(DATA, model="cnn")``;
* ``notes_cnn`` — the notes' from-scratch network (Conv2D/MaxPooling2D ×3, Flatten, Dense 512) at
  256 px for 20 epochs, scored on the same test images.

Run: ``.venv/bin/python bench/bench_training.py [--data DIR] [--only baseline,default,time1m]
[--seeds 42,1]``. Each method runs once per seed (``--seeds``; the split, shuffling and
initialisation follow it), each run with its own cold feature cache. Prints one ``RESULT`` line per
method and seed — wall seconds, the process's CPU seconds (user + sys) and the load average before
and after — then the ratios to the baseline (to ``expert`` when no baseline ran). The default
against the expert's script, side by side: ``bench/bench_training.py --only expert,default
--seeds 42``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
from common import DIGITS as DEFAULT_DATA  # noqa: E402 (after the environment is set)

METHODS = ("baseline", "expert", "default", "time1m", "time45s", "cnn", "notes_cnn")
CPU_SECONDS: dict[tuple[str, int], float] = {}  # (method, seed) -> the run's CPU seconds


def held_out_split(data: Path, workdir: Path, seed: int = 42):
    """imgclf's split of ``data`` for ``seed``, materialised as symlink folders: trainval/<class>,
    test/<class>, and the same images again as train/<class>, val/<class>."""
    from imgclf.config import TrainConfig
    from imgclf.data.prepare import prepare_training_data
    from imgclf.data.scan import scan_folder

    scanned = scan_folder(data)
    scanned, items, _ = prepare_training_data(
        scanned, TrainConfig(data=str(data), seed=seed), verbose=0
    )
    for item in items:
        parts = {item.split, "test" if item.split == "test" else "trainval"}
        for part in parts:
            target = workdir / part / scanned.classes[item.label] / Path(item.path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(Path(item.path).resolve())
    return workdir / "trainval", workdir / "test", scanned.classes


def _keras_test_accuracy(model, test_dir: Path, size: int) -> float:
    import keras

    test = keras.utils.image_dataset_from_directory(
        test_dir, image_size=(size, size), shuffle=False, verbose=False
    )
    return float(model.evaluate(test, verbose=0)[1])


def baseline(trainval: Path, test_dir: Path, num_classes: int, seed: int) -> float:
    """The keras.io transfer-learning guide, as a user types it (the backbone is imgclf's built-in
    file,
    the only ImageNet weights available offline)."""
    import keras

    from imgclf.models.backbones import BUILTIN_WEIGHTS

    size = 224
    train, val = keras.utils.image_dataset_from_directory(
        trainval,
        validation_split=0.2,
        subset="both",
        seed=seed,
        image_size=(size, size),
        batch_size=32,
        verbose=False,
    )
    base_model = keras.saving.load_model(BUILTIN_WEIGHTS)
    base_model.trainable = False
    augmentation = keras.Sequential(
        [keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1)]
    )
    inputs = keras.Input((size, size, 3))
    x = augmentation(inputs)
    x = base_model(x, training=False)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(train, validation_data=val, epochs=10, verbose=0)
    return _keras_test_accuracy(model, test_dir, size)


def notes_cnn(trainval: Path, test_dir: Path, num_classes: int, seed: int) -> float:
    """The notes' from-scratch recipe: rescale, three Conv2D/MaxPooling2D blocks, Flatten, Dense, 20
    epochs at 256 px."""
    import keras

    size = 256
    train, val = keras.utils.image_dataset_from_directory(
        trainval,
        validation_split=0.2,
        subset="both",
        seed=seed,
        image_size=(size, size),
        batch_size=32,
        verbose=False,
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


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_method(
    method: str, data: Path, work: Path, trainval: Path, test_dir: Path, num_classes: int, seed: int
) -> tuple[float, float]:
    """One method on one seed with a cold feature cache; prints its RESULT line, returns (seconds,
    accuracy)."""
    os.environ["IMGCLF_CACHE"] = str(
        work / f"cache-{method}-{seed}"
    )  # cold feature cache: nothing carried over
    load, cpu, t = os.getloadavg()[0], _cpu_seconds(), time.perf_counter()
    if method == "baseline":
        acc = baseline(trainval, test_dir, num_classes, seed)
    elif method == "expert":
        from expert_finetune import expert

        acc = expert(
            trainval.parent / "train", trainval.parent / "val", test_dir, num_classes, seed
        )
    elif method == "notes_cnn":
        acc = notes_cnn(trainval, test_dir, num_classes, seed)
    else:
        options = {
            "time1m": {"time_budget": "1m"},
            "time45s": {"time_budget": "45s"},
            "cnn": {"model": "cnn"},
        }.get(method, {})
        acc = imgclf_run(data, work / "runs", seed=seed, **options)
    secs, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
    CPU_SECONDS[method, seed] = cpu
    print(
        f"RESULT method={method} seed={seed} seconds={secs:.1f} cpu_seconds={cpu:.1f} "
        f"test_accuracy={acc:.4f} "
        f"load={load:.2f}->{os.getloadavg()[0]:.2f}",
        flush=True,
    )
    return secs, acc


def _print_ratios(results: dict, methods: list[str], seeds: list[int]) -> None:
    """One RATIO line per method and seed against the reference: ``baseline`` when it ran, else
    ``expert``, else the first method."""
    ref = next((m for m in ("baseline", "expert") if m in methods), methods[0])
    for seed in seeds:
        ref_s, ref_acc = results[ref, seed]
        ref_cpu = CPU_SECONDS[ref, seed]
        for method in methods:
            secs, acc = results[method, seed]
            print(
                f"RATIO seed={seed} {method}: time {secs / ref_s:.2f}x {ref}, "
                f"CPU {CPU_SECONDS[method, seed] / ref_cpu:.2f}x, "
                f"accuracy {acc - ref_acc:+.4f} vs {ref}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--only", default=",".join(METHODS[:3]), help=f"comma list of {', '.join(METHODS)}"
    )
    parser.add_argument(
        "--seeds", default="42", help="comma list of seeds; every method runs once per seed"
    )
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.only.split(",") if m.strip()]
    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: expected integers such as 42,1")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; expected some of {', '.join(METHODS)}")
    if not args.data.is_dir():
        parser.error(f"data folder {str(args.data)!r} does not exist")

    with tempfile.TemporaryDirectory(prefix="imgclf-bench-") as tmp:
        work = Path(tmp)
        results: dict[tuple[str, int], tuple[float, float]] = {}
        for seed in seeds:
            # imgclf's split for this seed: the baseline and the notes' network are scored on the
            # same test images
            trainval, test_dir, classes = held_out_split(args.data, work / f"split-{seed}", seed)
            n_test = sum(1 for _ in test_dir.rglob("*") if _.is_file())
            print(
                f"data {args.data} | seed {seed} | {len(classes)} classes | {n_test} test images",
                flush=True,
            )
            for method in methods:
                results[method, seed] = _run_method(
                    method, args.data, work, trainval, test_dir, len(classes), seed
                )
        _print_ratios(results, methods, seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
