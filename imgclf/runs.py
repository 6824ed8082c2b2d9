"""Run folders: self-describing, never overwritten, holding everything needed to predict.

```
runs/<name>/
  config.yaml     resolved TrainConfig (image_size filled in)
  classes.json    class names in label order
  split.csv       path, label, split for every image used
  history.csv     one row per epoch (stage, epoch, loss, accuracy, val_loss, val_accuracy, lr,
                  seconds)
  model.keras     best model by validation loss (preprocessing inside)
  metrics.json    test-split metrics
  data_report.json  files skipped and why
  versions.json   library versions
  evaluations/<folder>/metrics.json   `imgclf evaluate RUN DATA`
  exports/<format>/  `imgclf export`: the model, labels.txt, parity.json
```

Only some runs have these: `augmentation.png` (training images and random augmented views, when
augmentation is on); `state.json` and `last.keras` (what `imgclf train --resume` needs: a run
writes `state.json` as soon as its folder exists and after every epoch; an interrupted run keeps
them, a finished one deletes them); `tensorboard/` (with `--tensorboard`).

A run's status (:func:`run_status`): *complete* (trained and tested, no `state.json`);
*interrupted* (stopped after something trained: its `model.keras` is the best so far, usable, and
`--resume` continues it); *incomplete* (stopped before the first stage finished: `model.keras`,
if any, is untrained, and :func:`require_trained` refuses it).
"""

from __future__ import annotations

import json
import platform
from dataclasses import fields
from pathlib import Path
from typing import Any

from imgclf.atomic import WRITE_ERRNOS, write_failure, write_text_atomic
from imgclf.config import TrainConfig
from imgclf.errors import DataError

__all__ = [
    "numbered_names",
    "RunFiles",
    "create_run_dir",
    "write_json",
    "read_json",
    "write_config",
    "read_config",
    "read_distribution",
    "library_versions",
    "check_run_dir",
    "require_trained",
    "run_status",
    "write_state",
    "drop_resume_files",
]


class RunFiles:
    CONFIG = "config.yaml"
    CLASSES = "classes.json"
    SPLIT = "split.csv"
    HISTORY = "history.csv"
    MODEL = "model.keras"
    METRICS = "metrics.json"
    DATA_REPORT = "data_report.json"
    VERSIONS = "versions.json"
    CURVES = "curves.png"
    AUGMENTATION = "augmentation.png"  # only when augmentation is on
    LAST = "last.keras"  # the model being trained, with optimizer state, after the latest epoch
    # the stage being trained and the epochs of it in last.keras, whether anything is trained yet
    STATE = "state.json"
    EVALUATIONS = "evaluations"
    CALIBRATION = "calibration.json"  # {"temperature": T, ...}: fitted on the validation split
    # one row per test image: path, true, predicted, every class's probability
    PREDICTIONS = "predictions.csv"
    REPORT = "report.html"  # the self-contained report (figures embedded)
    TIMINGS = "timings.json"  # the command line and wall time per stage


def numbered_names(name: str, limit: int = 10_000):
    """``name``, ``name2``, ``name3`` … (Ultralytics' convention for never overwriting a folder).

    Args:
        name: the first name.
        limit: how many names to try before giving up.
    """
    yield name
    yield from (f"{name}{i}" for i in range(2, limit))


def create_run_dir(out: str | Path, name: str) -> Path:
    """Make ``out/name``, or ``name2``, ``name3`` … if taken (Ultralytics' convention).

    Args:
        out: the folder of run folders (created if needed).
        name: the run's name.

    Raises:
        DataError: ``out`` is a file, cannot be written, or holds too many runs named ``name``.
    """
    out_path = Path(out).expanduser()
    if out_path.exists() and not out_path.is_dir():
        raise DataError(f"output path {str(out)!r} is a file; expected a folder for run folders")
    for numbered in numbered_names(name):
        candidate = out_path / numbered
        try:
            out_path.mkdir(parents=True, exist_ok=True)
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in WRITE_ERRNOS:
                raise write_failure(candidate, exc) from None
            raise
    raise DataError(f"too many runs named {name!r} in {str(out)!r}")


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON, atomically (a reader never sees half a file).

    Args:
        path: the file to write.
        obj: a JSON-serialisable value.
    """
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    """The value of a UTF-8 JSON file.

    Args:
        path: the file.
    """
    return json.loads(path.read_text(encoding="utf-8"))


def write_config(path: Path, config: TrainConfig, extra: dict[str, Any] | None = None) -> None:
    """Write a run's training configuration as YAML, atomically.

    Args:
        path: the file to write (``config.yaml``).
        config: the configuration.
        extra: what the run records beside its options (``distribution``); read_config skips it.
    """
    import yaml

    write_text_atomic(path, yaml.safe_dump({**config.to_dict(), **(extra or {})}, sort_keys=False))


def read_config(path: Path) -> TrainConfig:
    """A run's training configuration; keys that ``TrainConfig`` does not know are ignored.

    Args:
        path: the YAML file (``config.yaml``).
    """
    import yaml

    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in known})


def read_distribution(path: Path) -> dict[str, Any] | None:
    """``distribution`` of a run's ``config.yaml`` (strategy and replicas); None in older runs."""
    import yaml

    values = yaml.safe_load((path / RunFiles.CONFIG).read_text(encoding="utf-8")) or {}
    return values.get("distribution")


def check_run_dir(path: str | Path) -> Path:
    """Raise a clear DataError unless ``path`` is a finished imgclf run folder.

    Args:
        path: the run folder (``~`` is expanded).

    Returns:
        The expanded path.
    """
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DataError(f"run folder {str(path)!r} does not exist")
    missing = [
        f for f in (RunFiles.CONFIG, RunFiles.CLASSES, RunFiles.MODEL) if not (p / f).is_file()
    ]
    if missing:
        raise DataError(
            f"{str(path)!r} is not an imgclf run folder (missing {', '.join(missing)}); "
            "pass a folder made by `imgclf train`"
        )
    return p


def write_state(
    run_dir: Path,
    stage: str,
    stage_epochs: int,
    *,
    trained: bool,
    head_loss: float | None = None,
    best: float | None = None,
) -> None:
    """Write ``state.json``, atomically: what ``imgclf train --resume`` continues from.

    Args:
        run_dir: the run folder.
        stage: the stage to continue (``head``, ``fine_tune``, ``train``; ``test``: training done).
        stage_epochs: epochs of ``stage`` done (held by ``last.keras`` when more than 0).
        trained: whether ``model.keras`` holds a trained model (a finished head or epoch).
        head_loss: the head stage's validation loss (what fine-tuning must beat).
        best: the best validation loss of ``stage`` so far.
    """
    state = {
        "stage": stage,
        "stage_epochs": stage_epochs,
        "head_loss": head_loss,
        "best": best,
        "trained": trained,
    }
    write_json(Path(run_dir) / RunFiles.STATE, state)


def drop_resume_files(folder: Path) -> None:
    """Remove ``last.keras`` and ``state.json``, which only ``--resume`` needs, from ``folder``
    (a run that finished its training, or an ensemble member)."""
    for leftover in (RunFiles.LAST, RunFiles.STATE):
        (Path(folder) / leftover).unlink(missing_ok=True)


def run_status(run_dir: str | Path) -> str:
    """``complete``, ``interrupted`` or ``incomplete`` (see the module's docstring).

    Args:
        run_dir: the run folder.
    """
    path = Path(run_dir).expanduser()
    if not (path / RunFiles.MODEL).is_file():
        return "incomplete"
    if not (path / RunFiles.STATE).is_file():
        return "complete" if (path / RunFiles.METRICS).is_file() else "incomplete"
    return "interrupted" if read_json(path / RunFiles.STATE).get("trained", True) else "incomplete"


def require_trained(run_dir: str | Path) -> Path:
    """The run folder, if its model was trained (:func:`check_run_dir` first); else a DataError
    saying how to continue it.

    Args:
        run_dir: the run folder.
    """
    path = Path(run_dir).expanduser()
    started = (path / RunFiles.STATE).is_file()  # an interrupted run may have no model.keras yet
    if not started:
        check_run_dir(path)
    if run_status(path) == "incomplete":
        raise DataError(
            f"run {str(run_dir)!r} is incomplete: it was stopped before its first training stage "
            f"finished, so its model is untrained; continue it with "
            f"`imgclf train --resume {run_dir}`"
        )
    return check_run_dir(path)


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in (
        "imgclf",
        "tensorflow",
        "tensorflow-cpu",
        "keras",
        "numpy",
        "pillow",
        "scikit-learn",
    ):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out
