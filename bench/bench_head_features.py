"""Issue 21.2: how far a head on frozen EfficientNet-Lite0 features goes on the digits, and what
the features cost — the backbone's last layer (what ``--time`` trains its head on today) against
multi-depth features (average- and max-pooled activations of :data:`LABEL_ISSUE_LAYERS`, as
``imgclf doctor --labels`` uses), at 128 and 96 px.

Everything runs in one process on imgclf's own split of the data (seed 42: train / val / test);
each feature set is extracted once (decoding included, CPU seconds of this process, user + sys),
then a head is fitted on the train rows, its setting picked on val, and scored on test:
scikit-learn's logistic regression on standardised features (``C`` from a small grid), and a Keras
Dense softmax head (Adam, early stopping on val).

Run: ``nice .venv/bin/python bench/bench_head_features.py [--sizes 128,96] [--views 1]``; one
``RESULT`` line per (size, features, head).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from common import DIGITS, result  # noqa: E402 (after the environment is set)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def split_items(data, seed: int):
    from imgclf.config import TrainConfig
    from imgclf.data.prepare import prepare_training_data
    from imgclf.data.scan import scan_folder

    scanned, items, _ = prepare_training_data(
        scan_folder(data), TrainConfig(data=str(data), seed=seed), verbose=0
    )
    return {s: [i for i in items if i.split == s] for s in ("train", "val", "test")}


def extract(model, items, size: int, augment=None) -> tuple[np.ndarray, np.ndarray]:
    """``model``'s output for every image (decoded at ``size``), and the labels."""
    import tensorflow as tf

    from imgclf.data.decode import DecodeLog
    from imgclf.data.pipeline import batched, decoded_dataset

    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    rows, labels = [], []
    for x, y in batched(decoded_dataset(items, size, DecodeLog(), cache=False), 32):
        if augment is not None:
            x = augment(x, training=True)
        rows.append(forward(x).numpy())
        labels.append(y.numpy())
    return np.concatenate(rows), np.concatenate(labels)


def logistic(train, val, test) -> tuple[float, float, float]:
    """(val, test accuracy, C) of the best C on val."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best = None
    for c in (0.001, 0.01, 0.1):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
        clf.fit(*train)
        v = clf.score(*val)
        if best is None or v > best[0]:
            best = (v, clf.score(*test), c)
    return best


def dense_head(train, val, test, seed: int) -> tuple[float, float, int]:
    """(val, test accuracy, epochs) of a Normalization + Dropout + Dense softmax head."""
    import keras

    keras.utils.set_random_seed(seed)
    norm = keras.layers.Normalization()
    norm.adapt(train[0])
    n = int(train[1].max()) + 1
    model = keras.Sequential(
        [
            keras.Input(train[0].shape[1:]),
            norm,
            keras.layers.Dropout(0.5),
            keras.layers.Dense(n, activation="softmax", kernel_regularizer="l2"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stop = keras.callbacks.EarlyStopping(
        "val_accuracy", patience=8, restore_best_weights=True, mode="max"
    )
    hist = model.fit(
        *train, validation_data=val, epochs=60, batch_size=32, verbose=0, callbacks=[stop]
    )
    return (
        max(hist.history["val_accuracy"]),
        float(model.evaluate(*test, verbose=0)[1]),
        len(hist.history["val_accuracy"]),
    )


def feature_models(size: int, seed: int):
    import keras

    from imgclf.constants import LABEL_ISSUE_LAYERS
    from imgclf.data.augment import augmentation_layers
    from imgclf.models.multi_depth import multi_depth_features
    from imgclf.models.registry import get_spec

    backbone = get_spec("efficientnet_lite0").builder(size)
    augment = keras.Sequential(augmentation_layers("flip,rotate=10,zoom=0.1", seed))
    return {"multi": multi_depth_features(backbone, LABEL_ISSUE_LAYERS), "last": backbone}, augment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,96")
    parser.add_argument("--views", type=int, default=1, help="train views (1: no augmented copy)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    split = split_items(DIGITS, args.seed)
    print({k: len(v) for k, v in split.items()}, f"load {os.getloadavg()[0]:.1f}", flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        models, augment = feature_models(size, args.seed)
        for name, model in models.items():
            cpu, wall = _cpu(), time.perf_counter()
            parts = {s: extract(model, split[s], size) for s in ("train", "val", "test")}
            for _ in range(args.views - 1):
                more = extract(model, split["train"], size, augment)
                pairs = zip(parts["train"], more, strict=True)
                parts["train"] = tuple(np.concatenate(p) for p in pairs)
            feat_cpu = _cpu() - cpu
            n = sum(len(p[1]) for p in parts.values())
            print(
                f"FEATURES size={size} features={name} dims={parts['train'][0].shape[1]} "
                f"images={n} cpu_s={feat_cpu:.1f} wall_s={time.perf_counter() - wall:.1f} "
                f"cpu_ms_per_image={1000 * feat_cpu / n:.2f}",
                flush=True,
            )
            for head in ("logistic", "dense"):
                cpu = _cpu()
                if head == "logistic":
                    val, test, setting = logistic(parts["train"], parts["val"], parts["test"])
                else:
                    val, test, setting = dense_head(
                        parts["train"], parts["val"], parts["test"], args.seed
                    )
                result(
                    size=size,
                    features=name,
                    views=args.views,
                    head=head,
                    val=val,
                    test=test,
                    setting=setting,
                    head_cpu_s=f"{_cpu() - cpu:.1f}",
                    load=f"{os.getloadavg()[0]:.1f}",
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
