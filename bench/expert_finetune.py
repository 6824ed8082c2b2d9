"""What an expert writes by hand to fine-tune EfficientNet-Lite0 with Keras 3 (issue 21.1's
"hand-written Lite0 fine-tuning script"), to time imgclf's default against.

``image_dataset_from_directory`` at 128 px (the photos are 100 px: 224 would upsample them further
for no new detail at 3× the cost of a forward pass on a CPU; imgclf's default picks 128 too), the
shared ImageNet Lite0 backbone, light augmentation (flip, rotate, zoom), 3 epochs of the head on the
frozen backbone (Adam 1e-3), then the top blocks from ``block8`` unfrozen (BatchNorm kept frozen
and in inference mode) for 6 epochs at a low learning rate (Adam, 2e-4 decayed by a cosine). No
feature cache, no model selection: the last epoch's model is scored on the test folder.

Run alone on a folder with ``train/``, ``val/`` and ``test/`` class folders:
``.venv/bin/python bench/expert_finetune.py DIR``; ``bench/bench_training.py --only expert,default``
gives it imgclf's own split of the digits and runs both in one process.
"""

from __future__ import annotations

import sys
from pathlib import Path

SIZE, BATCH, HEAD_EPOCHS, FINE_EPOCHS, UNFREEZE_FROM = 128, 32, 3, 6, "block8_"


def load(folder: Path, shuffle: bool, seed: int):
    import keras
    import tensorflow as tf

    ds = keras.utils.image_dataset_from_directory(
        folder, image_size=(SIZE, SIZE), batch_size=None, shuffle=shuffle, seed=seed, verbose=False
    ).cache()  # decoded once; reshuffled every epoch after the cache (the TF tutorial's order)
    if shuffle:
        ds = ds.shuffle(2048, seed=seed)
    return ds.batch(BATCH).prefetch(tf.data.AUTOTUNE)


def expert(train_dir: Path, val_dir: Path, test_dir: Path, num_classes: int, seed: int) -> float:
    """Train as described above; returns the test accuracy."""
    import keras

    from imgclf.models.backbones import BUILTIN_WEIGHTS  # the shared Lite0 file, as shipped

    keras.utils.set_random_seed(seed)
    train, val, test = (
        load(train_dir, True, seed),
        load(val_dir, False, seed),
        load(test_dir, False, seed),
    )
    base = keras.saving.load_model(BUILTIN_WEIGHTS)
    base.trainable = False
    augment = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(10 / 360, seed=seed),
            keras.layers.RandomZoom(0.1, seed=seed),
        ]
    )
    inputs = keras.Input((SIZE, SIZE, 3))
    x = base(augment(inputs), training=False)  # BatchNorm in inference mode, also once unfrozen
    x = keras.layers.Dropout(0.2)(x)
    model = keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
    loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    model.compile(keras.optimizers.Adam(1e-3), loss, metrics=metrics)
    model.fit(train, validation_data=val, epochs=HEAD_EPOCHS, verbose=0)

    base.trainable = True
    cut = next(i for i, layer in enumerate(base.layers) if layer.name.startswith(UNFREEZE_FROM))
    for i, layer in enumerate(base.layers):
        frozen = i < cut or isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = not frozen
    schedule = keras.optimizers.schedules.CosineDecay(2e-4, FINE_EPOCHS * len(train))
    model.compile(keras.optimizers.Adam(schedule), loss, metrics=metrics)
    model.fit(train, validation_data=val, epochs=FINE_EPOCHS, verbose=0)
    return float(model.evaluate(test, verbose=0)[1])


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not all((Path(argv[0]) / p).is_dir() for p in ("train", "val", "test")):
        print("usage: expert_finetune.py DIR (with train/, val/ and test/ class folders)")
        return 2
    root = Path(argv[0])
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    acc = expert(root / "train", root / "val", root / "test", len(classes), 42)
    print(f"test accuracy {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
