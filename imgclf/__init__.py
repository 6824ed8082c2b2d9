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

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter is not for users
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")

from imgclf.config import TrainConfig, resolve_config
from imgclf.errors import ConfigError, DataError, ImgclfError, ModelError

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
    "__version__",
]


def train(data: str | Path, config: str | Path | None = None, verbose: int = 1, **options: Any) -> TrainResult:
    """Train on ``data`` (a folder) and write a run folder. ``options`` are TrainConfig fields."""
    from imgclf.training.trainer import train_run

    return train_run(resolve_config(config, data=str(data), **options), verbose=verbose)


def load_run(path: str | Path) -> Run:
    """Open a run folder made by :func:`train`."""
    from imgclf.serving.predictor import load_run as _load_run

    return _load_run(path)


def evaluate(run: str | Path, data: str | Path | None = None) -> Metrics:
    """Metrics of a run on its test split, or on a separate labelled folder."""
    return load_run(run).evaluate(data)


def predict(run: str | Path, paths: str | Path | list[str | Path], top_k: int = 3) -> list[Prediction]:
    """Predictions of a run for files and folders."""
    return load_run(run).predict(paths, top_k=top_k)


def doctor(data: str | Path, near_threshold: int | None = None, group_by: str | None = None) -> DoctorReport:
    """Check a data folder before training: unusable files, duplicates, class balance, sizes.
    ``print(report.format())`` shows it as ``imgclf doctor`` does; ``report.to_dict()`` is the JSON."""
    from imgclf.data.doctor import DEFAULT_NEAR_THRESHOLD, diagnose
    from imgclf.data.scan import scan_folder

    threshold = DEFAULT_NEAR_THRESHOLD if near_threshold is None else near_threshold
    return diagnose(scan_folder(data), near_threshold=threshold, group_by=group_by)


def list_models():
    """The model registry's entries."""
    from imgclf.models.registry import list_models as _list

    return _list()
