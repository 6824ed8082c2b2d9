"""Run a model over a list of images and score it: the one path used for test, val and new folders.

:func:`evaluate_run` is ``imgclf evaluate RUN [DATA]``: the run's test split, or a separate labelled
folder whose metrics, predictions and report are saved in ``RUN/evaluations/<folder>/``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imgclf.data.scan import ImageItem, scan_folder
from imgclf.errors import DataError
from imgclf.evaluation.honesty import honesty_check
from imgclf.evaluation.inference import Scores, score_items
from imgclf.evaluation.metrics import Metrics, compute_metrics
from imgclf.evaluation.overlap import Seen, find_seen, overlap_summary, write_seen
from imgclf.evaluation.stats import confused_pairs, summary_statistics
from imgclf.evaluation.tta import tta_views
from imgclf.progress import progress
from imgclf.runs import RunFiles, numbered_names, read_json, write_json

__all__ = [
    "evaluate_items",
    "metrics_from_scores",
    "evaluate_run",
    "evaluation_dir",
    "External",
    "score_folder",
    "check_honesty",
    "save_evaluation",
]


def metrics_from_scores(scores: Scores, classes: list[str], split: str, seed: int = 0) -> Metrics:
    """Metrics of labelled ``scores``: per class, confusion matrix, confidence intervals, confused
    pairs.

    Args:
        scores: the prediction core's result for labelled images.
        classes: class names in label order.
        split: what was evaluated.
        seed: seed of the bootstrap intervals.
    """
    metrics = compute_metrics(scores.labels, scores.predicted, classes, split)
    metrics.skipped = [{"path": p, "reason": r} for p, r in scores.failures.items()]
    metrics.statistics = summary_statistics(scores.probs, scores.labels, seed)
    metrics.confused_pairs = confused_pairs(metrics.confusion_matrix, classes)
    return metrics


def evaluate_items(
    model,
    items: Sequence[ImageItem],
    classes: list[str],
    image_size: int,
    batch_size: int,
    split: str,
    temperature: float = 1.0,
) -> Metrics:
    """Metrics of ``model`` on ``items``; undecodable images are listed in ``Metrics.skipped``.

    Args:
        model: the Keras classifier.
        items: the labelled images.
        classes: the class names, indexed by label.
        image_size: the model's square input size in pixels.
        batch_size: images per forward pass.
        split: the name recorded in the metrics (e.g. ``"test"``).
        temperature: calibration temperature applied to the probabilities. Defaults to 1.0 (none).
    """
    return metrics_from_scores(
        score_items(model, items, image_size, batch_size, temperature), classes, split
    )


def evaluation_dir(run_dir: Path, data: str | Path) -> Path:
    """``evaluations/<folder name>``, or ``<name>2``, ``<name>3`` … when that one holds an
    evaluation of another folder with the same name (an evaluation of the same folder is refreshed
    in place).

    Args:
        run_dir: the run folder.
        data: the evaluated folder.
    """
    source = str(Path(data).expanduser().resolve())
    base = run_dir / RunFiles.EVALUATIONS
    name = Path(source).name
    for numbered in numbered_names(name):
        candidate = base / numbered
        saved = candidate / RunFiles.METRICS
        if not candidate.exists() or (saved.is_file() and read_json(saved).get("data") == source):
            return candidate
    raise DataError(f"too many evaluations named {name!r} in {str(base)!r}")


def _folder_items(data, classes: list[str]) -> tuple[list[ImageItem], str, list[dict[str, str]]]:
    """A labelled folder's images (its test/ part when it is pre-split), its name, and skipped
    files."""
    scanned = scan_folder(data, classes=classes)
    items, split = scanned.items, "all"
    if scanned.presplit:
        test = [i for i in items if i.split == "test"]
        items, split = (test, "test") if test else (items, "all")
    name = Path(data).expanduser().resolve().name
    return items, f"{name}/{split}", [{"path": k.path, "reason": k.reason} for k in scanned.skipped]


def _items(run, data) -> tuple[list[ImageItem], str, list[dict[str, str]]]:
    from imgclf.data.split import read_manifest

    if data is None:
        items = read_manifest(run.path / RunFiles.SPLIT, run.classes, run.config.data, split="test")
        if not items:
            raise DataError(
                f"run {str(run.path)!r} has no test split; pass a labelled folder to evaluate on"
            )
        missing = [i.path for i in items if not Path(i.path).exists()]
        if missing:
            raise DataError(
                f"test image {missing[0]!r} of run {str(run.path)!r} no longer exists; "
                "was the data folder moved?"
            )
        return items, "test", []
    return _folder_items(data, run.classes)


@dataclass
class External:
    """A separate labelled folder scored by a run's model: where it is, its scores and metrics, and
    which of its images the run saw in training or validation (path → how)."""

    data: str
    scores: Scores
    metrics: Metrics
    seen: dict[str, Seen] = field(default_factory=dict)


def score_folder(
    model,
    data: str | Path,
    classes: list[str],
    image_size: int,
    batch_size: int,
    seed: int = 0,
    temperature: float = 1.0,
    verbose: int = 0,
    run_dir: Path | None = None,
    tta: bool | str | int | tuple = False,
) -> External:
    """Metrics of ``model`` on a labelled folder (its ``test/`` part when pre-split), skipped files
    listed.

    Args:
        model: the Keras classifier.
        data: the labelled folder.
        classes: the run's class names in label order (the folder's class folders must be among
        them). image_size: the model's square input size in pixels. batch_size: images per forward
        pass. seed: seed of the bootstrap intervals. temperature: calibration temperature of the
        probabilities. Defaults to 1.0 (none). verbose: 1 shows a progress bar. run_dir: the run
        folder: its train and val images found in the folder (same path, same content, near
        duplicate) are counted and scored apart (``Metrics.overlap``). tta: test-time
        augmentation, as for :func:`imgclf.evaluation.inference.iter_scores`.
    """
    items, split, skipped = _folder_items(data, classes)
    with progress("evaluating", len(items), enabled=verbose > 0) as advance:
        scores = score_items(model, items, image_size, batch_size, temperature, advance, tta)
    metrics = metrics_from_scores(scores, classes, split, seed)
    metrics.skipped = skipped + metrics.skipped
    seen: dict[str, Seen] = {}
    if run_dir is not None:
        seen = find_seen(Path(run_dir), classes, scores.paths, progress=verbose > 0)
        right = scores.predicted == scores.labels
        metrics.overlap = overlap_summary(scores.paths, right, seen, split)
    return External(str(Path(data).expanduser().resolve()), scores, metrics, seen)


def check_honesty(internal: Metrics | dict, external: Metrics) -> dict:
    """Compare the run's own test metrics with a separate folder's; the result is stored on both
    (``Metrics.honesty``, when ``internal`` is a Metrics) and returned. Only the folder's images
    that the run never saw are compared (``external.overlap``); when it saw them all, the result
    says that no external estimate exists.

    Args:
        internal: the run's test metrics (a Metrics, or metrics.json's contents).
        external: the separate folder's metrics.
    """
    inside = internal.to_dict() if isinstance(internal, Metrics) else internal
    check = honesty_check(
        inside,
        external.to_dict(),
        external.split,
        f"internal {inside['split'].split(' ')[0]} split",
    )
    external.honesty = check
    if isinstance(internal, Metrics):
        internal.honesty = check
    return check


def save_evaluation(run_dir: Path, external: External, classes: list[str]) -> Path:
    """Write ``metrics.json`` and ``predictions.csv`` of a separate folder into
    ``evaluations/<folder>/``.

    Args:
        run_dir: the run folder.
        external: :func:`score_folder`'s result.
        classes: class names in label order.
    """
    from imgclf.evaluation.predictions import write_predictions

    out = evaluation_dir(run_dir, external.data)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / RunFiles.METRICS, {**external.metrics.to_dict(), "data": external.data})
        write_predictions(out / RunFiles.PREDICTIONS, external.scores, classes)
        write_seen(out, external.seen)
    except OSError as exc:
        raise DataError(
            f"could not save the evaluation in {str(out)!r}: {exc.strerror or exc}"
        ) from None
    return out


def evaluate_run(
    run,
    data: str | Path | None = None,
    batch_size: int | None = None,
    verbose: int = 0,
    on_metrics: Callable[[Metrics], None] | None = None,
    tta: bool | str | int = False,
) -> Metrics:
    """Metrics of a run on its test split, or on a labelled folder (then saved, with predictions.csv
    and a report, under ``evaluations/``, and compared with the run's own test accuracy:
    ``Metrics.honesty``). Probabilities are calibrated with the run's temperature.

    Args:
        run: a :class:`imgclf.serving.predictor.Run`.
        data: a labelled folder, or None for the run's test split.
        batch_size: images per forward pass (default: the run's).
        verbose: 1 shows a progress bar.
        on_metrics: called with the metrics before they are saved (the CLI prints them there, so a
            read-only run folder loses nothing).
        tta: test-time augmentation (:mod:`imgclf.evaluation.tta`; mirrored views in ``N`` only
            where the run trained with flips).
    """
    from imgclf.evaluation.calibration import read_temperature

    batch_size, temperature = batch_size or run.config.batch_size, read_temperature(run.path)
    views = tta_views(tta, run.config.augment)
    if data is None:
        items, split, _ = _items(run, None)
        with progress("evaluating", len(items), enabled=verbose > 0) as advance:
            scores = score_items(
                run.model, items, run.image_size, batch_size, temperature, advance, views
            )
        metrics = metrics_from_scores(scores, run.classes, split, run.config.seed)
        if on_metrics is not None:
            on_metrics(metrics)
        return metrics
    external = score_folder(
        run.model,
        data,
        run.classes,
        run.image_size,
        batch_size,
        run.config.seed,
        temperature,
        verbose,
        run.path,
        views,
    )
    internal = run.path / RunFiles.METRICS
    if internal.is_file() and "statistics" in (saved := read_json(internal)):
        check_honesty(saved, external.metrics)
    if on_metrics is not None:
        on_metrics(external.metrics)
    save_evaluation(run.path, external, run.classes)
    return external.metrics
