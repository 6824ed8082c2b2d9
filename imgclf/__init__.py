"""imgclf: a folder of labelled images in, a trained, honestly tested classifier out.

```python
import imgclf
result = imgclf.train("photos/", epochs=5)          # → runs/photos/
run = imgclf.load_run(result.run_dir)
for p in run.predict("new_pictures/"):
    print(p.path, p.label, p.confidence)
```
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgclf.config import PREDICT_ENGINE, TrainConfig
from imgclf.config_files import resolve_config
from imgclf.errors import ConfigError, DataError, ImgclfError, ModelError
from imgclf.runtime import quiet_tensorflow_logs

if TYPE_CHECKING:
    from imgclf.data.doctor import DoctorReport
    from imgclf.evaluation.metrics import Metrics
    from imgclf.serving.predictor import Prediction, Run
    from imgclf.training.trainer import TrainResult

__version__ = "0.1.0"

__all__ = [
    "train",
    "evaluate",
    "predict",
    "load_run",
    "doctor",
    "list_models",
    "TrainConfig",
    "ImgclfError",
    "ConfigError",
    "DataError",
    "ModelError",
    "Run",
    "Prediction",
    "Metrics",
    "TrainResult",
    "DoctorReport",
    "__version__",
]

# The result types users receive, imported on first use (``imgclf.Run``) so that ``import imgclf``
# stays free of TensorFlow (PEP 562).
_LAZY = {
    "Run": "imgclf.serving.predictor",
    "Prediction": "imgclf.serving.predictor",
    "Metrics": "imgclf.evaluation.metrics",
    "TrainResult": "imgclf.training.trainer",
    "DoctorReport": "imgclf.data.doctor",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        if _LAZY[name] != "imgclf.data.doctor":
            quiet_tensorflow_logs()
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'imgclf' has no attribute {name!r}")


def train(
    data: str | Path, config: str | Path | None = None, verbose: int = 1, **options: Any
) -> TrainResult:
    """Train a classifier on a folder of labelled images and write a run folder.

    Options are the fields of :class:`imgclf.TrainConfig`, the same as ``imgclf train``'s flags
    (every
    default lives there; ``imgclf train --help`` lists them all). The main ones:

    - ``model="auto"``: picked from the data and ``time_budget`` (see ``imgclf train --help``), a
    name from
      ``imgclf.list_models()`` or a path to a ``.keras`` backbone.
    - ``image_size=None``: square input size; None picks it from the data within the model's range.
    - ``epochs=None``: main-stage epochs; None: the model's own (8 for fine-tuning, 25 for ``cnn``).
    - ``head_epochs=30``, ``batch_size=32``, ``patience=4`` (early stopping), ``seed=42``.
    - ``learning_rate=1e-3`` (head / from scratch), ``fine_tune_learning_rate=5e-4``,
      ``optimizer="adam"``, ``lr_schedule="cosine"``.
    - ``fine_tune="auto"`` (``"all"``, ``"none"`` or N last layers), ``views=2`` (cached augmented
    views).
    - ``augment="flip,rotate=10,zoom=0.1"`` (or ``"none"``), ``class_weight="none"`` (or
    ``"auto"``),
      ``label_smoothing=0.0``, ``stop_at_accuracy=None``, ``time_budget=None`` (e.g. ``"5m"``).
    - ``val_fraction=0.2``, ``test_fraction=0.1``, ``group_by=None``, ``duplicates_together=True``.
    - ``min_delta=1e-3`` (early stopping), ``skip_fine_tune_loss=0.01``, ``backbone_lr_scale=1.0``,
      ``fine_tune_optimizer=None`` (``optimizer``'s), ``test_dir=None`` (a separate labelled
      folder),
      ``precise_bn=20`` (from scratch: BatchNorm statistics re-estimated before each validation; 0:
      off).
    - ``out="runs"``, ``name=None`` (the data folder's name; never overwrites: name2, name3, …),
      ``report=True`` (False: no report.html; ``imgclf report RUN`` builds it later).

    Args:
        data: ``DATA/<class>/<images>``, or ``DATA/train|val|test/<class>/<images>``, or NumPy
        arrays
            (a ``.npz``, or a folder with ``features.npy`` + ``target.npy``).
        config: a YAML or JSON file of options; ``options`` override it. Defaults to None.
        verbose: 0 prints nothing; 1 prints the doctor's findings, progress and the test metrics.
            Defaults to 1.
        **options: :class:`~imgclf.config.TrainConfig` fields (an unknown name is a ``ConfigError``
            with a suggestion).

    Returns:
        A :class:`TrainResult`: ``run_dir``, ``config`` (resolved), ``classes``, ``metrics`` (on the
        test split), ``interrupted``, ``seconds``.
    """
    quiet_tensorflow_logs()
    from imgclf.training.trainer import train_run

    return train_run(resolve_config(config, data=str(data), **options), verbose=verbose)


def load_run(path: str | Path, engine: str = PREDICT_ENGINE) -> Run:
    """Open a run folder made by :func:`train`, to predict or evaluate with it.

    Args:
        path: the run folder (``runs/NAME``).
        engine: how predictions run the model: ``auto`` (a cached TFLite copy checked against the
            Keras model, else Keras), ``tflite`` or ``keras``.
    """
    quiet_tensorflow_logs()
    from imgclf.serving.predictor import load_run as _load_run

    return _load_run(path, engine)


def evaluate(run: str | Path, data: str | Path | None = None) -> Metrics:
    """Metrics of a run on its test split, or on a separate labelled folder.

    Args:
        run: the run folder.
        data: a labelled folder whose class names match the run's; None: the run's test split.
    """
    return load_run(run).evaluate(data)


def predict(
    run: str | Path, paths: str | Path | list[str | Path], top_k: int = 3
) -> list[Prediction]:
    """Predictions of a run for files and folders.

    Args:
        run: the run folder.
        paths: image files and folders (searched recursively).
        top_k: classes listed per image, most likely first. Defaults to 3.
    """
    return load_run(run).predict(paths, top_k=top_k)


def doctor(
    data: str | Path, near_threshold: int | None = None, group_by: str | None = None
) -> DoctorReport:
    """Check a data folder before training: unusable files, duplicates, class balance, sizes.
    ``print(report.format())`` shows it as ``imgclf doctor`` does; ``report.to_dict()`` is the JSON.

    Args:
        data: the data folder (or arrays), as for :func:`train`.
        near_threshold: near-duplicate distance in pHash bits of 64; -1: no near-duplicate search.
            Defaults to None (4).
        group_by: a regex or CSV of ``path,group``: report groups found in more than one split.
    """
    from imgclf.data.doctor import DEFAULT_NEAR_THRESHOLD, diagnose
    from imgclf.data.scan import scan_folder

    threshold = DEFAULT_NEAR_THRESHOLD if near_threshold is None else near_threshold
    return diagnose(scan_folder(data), near_threshold=threshold, group_by=group_by)


def list_models():
    """The model registry's entries, sorted by name (what ``imgclf models`` lists)."""
    quiet_tensorflow_logs()
    from imgclf.models.registry import list_models as _list

    return _list()
