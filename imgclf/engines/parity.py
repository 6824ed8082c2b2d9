"""The parity check: does a converted model give the Keras model's answers on held-out images?

Every export (``imgclf export``) and the TFLite copy ``predict``/``serve`` run (``--engine auto``)
are checked the same way: the run's test split (its validation split when no test images are left
on disk), up to :data:`MAX_IMAGES` images spread evenly over it, through the Keras model and through
the candidate. The record says how many images were used, the top-1 agreement with its Wilson 95 %
interval — what the check proves: on images like these the candidate agrees with Keras at least as
often as the interval's lower end, with 95 % confidence (30 images that all agree prove no more than
88.6 %) — and the largest probability difference, the stronger evidence for a float export (a
difference of 1e-5 means the two compute the same function). Below :data:`MIN_AGREEMENT` observed
agreement a candidate is not called good.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf.data.decode import DecodeLog
from imgclf.data.scan import ImageItem
from imgclf.data.split import read_manifest
from imgclf.engines.base import TrainedRun
from imgclf.engines.keras_engine import KerasEngine
from imgclf.errors import DataError
from imgclf.evaluation.stats import wilson_interval
from imgclf.models.classifier import class_probabilities
from imgclf.runs import RunFiles

__all__ = [
    "MAX_IMAGES",
    "MIN_AGREEMENT",
    "PARITY_FILE",
    "Parity",
    "check_parity",
    "held_out_batches",
    "held_out_items",
    "read_parity",
    "write_parity",
]

MIN_AGREEMENT = 0.99
MAX_IMAGES = 500  # held-out images a parity check runs at most (spread evenly over the split)
PARITY_FILE = "parity.json"
LABELS_FILE = "labels.txt"
_BATCH = 64


@dataclass(frozen=True)
class Parity:
    """How a converted model compares with the Keras model on held-out images.

    Attributes:
        format: what was checked (``onnx``, ``tflite float16``, …).
        path: the converted model.
        split: the run's split the images came from (``test``, or ``val`` without test images).
        n: images compared (those of the split on disk, at most :data:`MAX_IMAGES`).
        available: images of that split on disk. agreed: images with the same top-1 class.
        max_abs_diff: largest |p_candidate - p_keras| over images and classes.
    """

    format: str
    path: Path
    split: str
    n: int
    available: int
    agreed: int
    max_abs_diff: float

    @property
    def agreement(self) -> float:
        return self.agreed / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """Wilson 95 % interval of the agreement."""
        return wilson_interval(self.agreed, self.n)

    @property
    def good(self) -> bool:
        return self.agreement >= MIN_AGREEMENT

    def proves(self) -> str:
        """What the check shows, in one sentence."""
        low = self.interval[0]
        capped = f" (spread over {self.available})" if self.available > self.n else ""
        return (
            f"{self.agreed} of {self.n} {self.split} images{capped} agree: with 95 % confidence "
            f"the copy agrees with Keras on at least {low:.1%} of images like these"
        )

    def summary(self) -> str:
        """Lines for the terminal: where the model is, the agreement and what it proves."""
        verdict = "good" if self.good else f"NOT good (below {MIN_AGREEMENT:.0%} agreement)"
        low, high = self.interval
        return (
            f"{self.format}: {self.path}\n  parity on {self.n} {self.split} images: top-1 "
            f"agreement {self.agreement:.2%} (95 % interval {low:.1%}–{high:.1%}), largest "
            f"probability difference {self.max_abs_diff:.2e} — {verdict}\n  {self.proves()}"
        )

    def record(self) -> dict:
        """The JSON record; ``path`` is relative to the folder the record is kept in."""
        low, high = self.interval
        return {
            "format": self.format,
            "path": self.path.name,
            "split": self.split,
            "n": self.n,
            "available": self.available,
            "max_images": MAX_IMAGES,
            "agreed": self.agreed,
            "agreement": self.agreement,
            "interval": [low, high],
            "proves": self.proves(),
            "max_abs_diff": self.max_abs_diff,
            "good": self.good,
        }


def held_out_items(
    run: TrainedRun, split: str = "test", limit: int | None = MAX_IMAGES
) -> tuple[list[ImageItem], str, int]:
    """The run's images of ``split`` still on disk, at most ``limit`` spread evenly over them.

    Returns ``(items, split used, images of that split on disk)``; ``test`` falls back to ``val``.

    Raises:
        DataError: no image of the split (nor of ``val`` for ``test``) is on disk.
    """
    for name in (split, "val") if split == "test" else (split,):
        items = read_manifest(run.path / RunFiles.SPLIT, run.classes, run.config.data, split=name)
        items = [i for i in items if Path(i.path).exists()]
        if items:
            if limit is not None and len(items) > limit:
                picks = np.unique(np.linspace(0, len(items) - 1, limit).round().astype(int))
                return [items[i] for i in picks], name, len(items)
            return items, name, len(items)
    raise DataError(
        f"run {str(run.path)!r} has no {split} images left on disk to check a copy of its model"
    )


def held_out_batches(items: Sequence[ImageItem], image_size: int) -> Iterator[np.ndarray]:
    """Batches of ``items`` decoded by the training pipeline: uint8 ``(n, size, size, 3)``."""
    from imgclf.data.pipeline import batched, decoded_dataset

    dataset = decoded_dataset(items, image_size, DecodeLog(), cache=False)
    for x, _ in batched(dataset, _BATCH):
        yield x.numpy()


def check_parity(
    run: TrainedRun, candidate: Callable[[np.ndarray], np.ndarray], name: str, path: Path
) -> Parity:
    """Compare ``candidate`` with the run's Keras model on its held-out images.

    Args:
        run: the run.
        candidate: the converted model: float32 pixels → its raw outputs (sigmoid column or
            softmax rows).
        name: what is checked, for the record (``tflite float32``, …).
        path: where the converted model is.
    """
    items, split, available = held_out_items(run)
    keras_engine = KerasEngine(run.model)
    n = agreed = 0
    diff = 0.0
    for x in held_out_batches(items, run.image_size):
        expected = keras_engine(x)
        got = class_probabilities(candidate(x.astype(np.float32)))
        n += len(x)
        agreed += int((expected.argmax(1) == got.argmax(1)).sum())
        diff = max(diff, float(np.abs(expected - got).max()))
    return Parity(name, path, split, n, available, agreed, diff)


def write_parity(folder: Path, parity: Parity, run: TrainedRun) -> None:
    """Write ``parity.json`` (the record, the input it takes, the temperature) and ``labels.txt``.

    Args:
        folder: the export folder (or the cached engine's folder).
        parity: the check's result.
        run: the run the model came from.
    """
    info = {
        **parity.record(),
        "image_size": run.image_size,
        "input": "float32 RGB pixels in [0, 255], (n, size, size, 3)",
        "temperature": run.temperature,
    }
    (folder / PARITY_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    (folder / LABELS_FILE).write_text("".join(f"{c}\n" for c in run.classes), encoding="utf-8")


def read_parity(folder: Path) -> dict | None:
    """``folder``'s parity record, or None when it has none (or an unreadable one)."""
    try:
        return json.loads((folder / PARITY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
