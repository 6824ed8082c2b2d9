"""imgclf: a folder of labelled images in, a trained, honestly tested classifier out.

```python
import imgclf
run = imgclf.train("photos/", epochs=5)             # → runs/photos/, a Run
for p in run.predict("new_pictures/"):
    print(p.path, p.label, p.confidence)
run.export("tflite")
```
"""

from __future__ import annotations

import importlib
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgclf.api import TrainOptions, open_run, train_config
from imgclf.config import TrainConfig
from imgclf.constants import PREDICT_ENGINE
from imgclf.errors import ConfigError, DataError, ImgclfError, ModelError
from imgclf.logs import to_terminal
from imgclf.runtime import quiet_tensorflow_logs

if TYPE_CHECKING:
    from typing import Unpack

    from imgclf.data.doctor import DoctorReport
    from imgclf.evaluation.metrics import Metrics
    from imgclf.models.registry import ModelSpec
    from imgclf.run import Run
    from imgclf.serving.prediction import Prediction
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
    "TrainOptions",
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
    "Run": "imgclf.run",
    "Prediction": "imgclf.serving.prediction",
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
    data: str | Path,
    config: TrainConfig | str | Path | None = None,
    verbose: int = 0,
    **overrides: Unpack[TrainOptions],
) -> Run:
    """Train a classifier on a folder of labelled images; write a run folder and return its
    :class:`Run`.

    Options are the fields of :class:`imgclf.TrainConfig`, the same as ``imgclf train``'s flags
    (every default lives there; ``imgclf train --help`` says what each does). Main ones: ``model``
    (``"auto"``, a name from :func:`list_models` or a ``.keras`` backbone), ``image_size``,
    ``epochs``, ``batch_size``, ``learning_rate``, ``augment``, ``time_budget`` (e.g. ``"5m"``),
    ``out`` and ``name`` (the run folder ``OUT/NAME``; never overwritten: name2, name3, …),
    ``report``.

    Args:
        data: ``DATA/<class>/<images>``, or ``DATA/train|val|test/<class>/<images>``, or NumPy
            arrays (a ``.npz``, or a folder with ``features.npy`` + ``target.npy``).
        config: a :class:`TrainConfig`, or a YAML or JSON file of options; ``overrides`` win over
            it. Defaults to None.
        verbose: 0 prints nothing (what the run does is logged to ``logging.getLogger("imgclf")``
            for a handler you configure); 1 prints it as ``imgclf train`` does: the doctor's
            findings, the plan, progress and the test metrics. Defaults to 0.
        **overrides: :class:`TrainConfig` fields (an unknown name is a ``ConfigError`` with a
            suggestion, as ``imgclf train`` says of a config file's).

    Returns:
        The :class:`Run`: ``predict``, ``evaluate``, ``export``, ``report``, ``serve``; its
        ``metrics`` are the test split's, ``training`` what training reported.

    >>> run = imgclf.train("photos/", model="cnn", image_size=32, epochs=1, out="new", verbose=0)
    >>> run.path.as_posix(), run.classes, run.metrics.split
    ('new/photos', ['cat', 'dog', 'fox'], 'test')
    >>> imgclf.train("photos/", epoch=1)
    Traceback (most recent call last):
    imgclf.errors.ConfigError: unknown argument option 'epoch'; did you mean 'epochs'?
    """
    started = time.perf_counter()  # time_budget counts from the call: importing TensorFlow too
    cfg = train_config(data, config, dict(overrides))
    quiet_tensorflow_logs()
    from imgclf.run import Run
    from imgclf.training.trainer import train_run

    with to_terminal() if verbose else nullcontext():
        result = train_run(cfg, verbose=verbose, started=started)
    run = Run(result.run_dir, untrained=True)  # Ctrl-C before training: its model is refused
    run.training = result
    return run


def load_run(path: str | Path, engine: str = PREDICT_ENGINE) -> Run:
    """Open a run folder made by :func:`train` (or ``imgclf train``).

    Args:
        path: the run folder (``runs/NAME``).
        engine: how predictions run the model: ``auto`` (a cached TFLite copy checked against the
            Keras model, else Keras), ``tflite`` or ``keras``.

    Returns:
        Its :class:`Run`; the model is loaded on first use, once.

    >>> run = imgclf.load_run("runs/photos")
    >>> run.predict("photos/fox/fox_000.jpg")[0].label in run.classes
    True
    """
    quiet_tensorflow_logs()
    from imgclf.run import load_run as _load_run

    return _load_run(path, engine)


def evaluate(run: str | Path, data: str | Path | None = None) -> Metrics:
    """Metrics of a run on its test split, or on a separate labelled folder. The run stays
    loaded for the next call (see :func:`imgclf.api.open_run`); ``load_run(run).evaluate(data)``
    is the same.

    Args:
        run: the run folder.
        data: a labelled folder whose class names match the run's; None: the run's test split.

    Returns:
        The :class:`Metrics`.

    >>> imgclf.evaluate("runs/photos").n
    6
    """
    quiet_tensorflow_logs()
    return open_run(run, PREDICT_ENGINE).evaluate(data)


def predict(
    run: str | Path, paths: str | Path | list[str | Path], top_k: int = 3
) -> list[Prediction]:
    """Predictions of a run for files and folders. The run stays loaded for the next call (see
    :func:`imgclf.api.open_run`); ``load_run(run).predict(paths)`` is the same.

    Args:
        run: the run folder.
        paths: image files and folders (searched recursively); or pictures in memory, as for
            :meth:`Run.predict`.
        top_k: classes listed per image, most likely first. Defaults to 3.

    Returns:
        One :class:`Prediction` per image, in input order.

    >>> [len(p.top_k) for p in imgclf.predict("runs/photos", "photos/dog", top_k=2)][:3]
    [2, 2, 2]
    """
    quiet_tensorflow_logs()
    return open_run(run, PREDICT_ENGINE).predict(paths, top_k=top_k)


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

    Returns:
        The :class:`DoctorReport`.

    >>> report = imgclf.doctor("photos/")
    >>> report.to_dict()["classes"], report.to_dict()["usable"]
    (['cat', 'dog', 'fox'], 60)
    """
    from imgclf.data.doctor import DEFAULT_NEAR_THRESHOLD, diagnose
    from imgclf.data.scan import scan_folder

    threshold = DEFAULT_NEAR_THRESHOLD if near_threshold is None else near_threshold
    return diagnose(scan_folder(data), near_threshold=threshold, group_by=group_by)


def list_models() -> list[ModelSpec]:
    """The model registry's entries, sorted by name (what ``imgclf models`` lists).

    Returns:
        Their specs: ``name``, input sizes, preprocessing, …

    >>> "cnn" in [spec.name for spec in imgclf.list_models()]
    True
    """
    quiet_tensorflow_logs()
    from imgclf.models.registry import list_models as _list

    return _list()
