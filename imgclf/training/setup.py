"""A run's set-up: a new run from its data (scan, doctor, split, model), or an interrupted run
reopened from its folder; and the run folder, written once the run's plan is made.

A run folder is opened with ``state.json`` saying that nothing is trained yet (:mod:`imgclf.runs`):
whatever stops the run from then on — Ctrl-C, SIGKILL, a crash — leaves a folder that ``predict``
refuses and ``train --resume`` continues.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras

from imgclf.config import TrainConfig
from imgclf.data.augment import augmentation_layers
from imgclf.data.balance import train_class_weights
from imgclf.data.prepare import prepare_training_data
from imgclf.data.scan import ImageItem, ScannedData, scan_folder
from imgclf.data.split import SPLITS, read_manifest, write_manifest
from imgclf.errors import DataError
from imgclf.models.choose import resolve_model
from imgclf.models.classifier import Classifier, build_classifier
from imgclf.models.loading import load_model_file
from imgclf.models.multi_depth import check_multi_depth, multi_depth_classifier
from imgclf.models.registry import ModelSpec, get_spec
from imgclf.reporting.augmentation import PREVIEW_IMAGES, plot_augmentation_preview
from imgclf.reporting.label_issues import LABEL_ISSUES_CSV
from imgclf.runs import (
    RunFiles,
    check_run_dir,
    create_run_dir,
    library_versions,
    read_config,
    read_json,
    write_config,
    write_json,
    write_state,
)
from imgclf.training.label_cleaning import drop_label_issues
from imgclf.training.label_issues import LabelIssues

__all__ = ["RunSetup", "classifier_for", "new_run", "open_run_dir", "resumable", "resume_run"]


@dataclass(frozen=True)
class RunSetup:
    """A run ready to plan: its options, data with splits, model, and what resuming restores."""

    cfg: TrainConfig  # image size and epochs filled in
    data: ScannedData
    items: list[ImageItem]  # with their splits
    clf: Classifier
    doctor_report: dict[str, Any] | None
    class_weight: dict[int, float] | None  # None unless --class-weight auto
    resume: dict[str, Any] | None = None  # state.json of the interrupted run; None for a new run
    run_dir: Path | None = None  # None until the plan is made (a resumed run: its folder)
    label_issues: LabelIssues | None = None  # the images --drop-label-issues left out

    @property
    def by_split(self) -> dict[str, list[ImageItem]]:
        return {name: [i for i in self.items if i.split == name] for name in SPLITS}


def new_run(cfg: TrainConfig, verbose: int) -> RunSetup:
    """Scan, diagnose and split the data, resolve ``--model auto`` and build the model (built
    before the run folder exists, so a model that cannot be had leaves none)."""
    data = scan_folder(cfg.data)
    sides = [min(i.width, i.height) for i in data.items]
    choice, spec = resolve_model(cfg, sides)  # saved in config.yaml
    # doctor summary; duplicate/--group-by groups kept whole
    data, items, doctor = prepare_training_data(data, cfg, verbose)
    report, class_weight, issues = doctor.to_dict(), doctor.train_class_weights, None
    if cfg.drop_label_issues:
        items, issues, left_out = drop_label_issues(items, data.classes, cfg.seed, bool(verbose))
        report["label_issues"] = {**issues.to_dict(), "left_out": left_out}
        class_weight = train_class_weights(items, len(data.classes), cfg.class_weight)
    cfg = replace(
        cfg,
        model=spec.name,
        image_size=choice.image_size,
        **dict(choice.settings),  # the tiny path's own options, where the user gave none
        epochs=cfg.epochs or spec.default_epochs,
        data=str(Path(data.root).resolve()),
    )
    clf = classifier_for(spec, cfg, len(data.classes))
    if cfg.head_features == "multi":  # a head on the frozen backbone only
        cfg = replace(cfg, fine_tune="none")
    return RunSetup(cfg, data, items, clf, report, class_weight, label_issues=issues)


def classifier_for(spec: ModelSpec, cfg: TrainConfig, num_classes: int) -> Classifier:
    """The run's classifier: ``spec``'s backbone with the head ``--head-features`` asks for (the
    pooled output's, or with ``multi`` the pooled activations of several depths,
    :mod:`imgclf.models.multi_depth`).

    Args:
        spec: the model's registry entry.
        cfg: the run's options (image size, augmentation, seed, head features, fine-tuning).
        num_classes: the number of classes.
    """
    clf = build_classifier(spec, num_classes, cfg.image_size, cfg.augment, cfg.seed)
    if cfg.head_features != "multi":
        return clf
    check_multi_depth(clf.backbone, spec.name, cfg.fine_tune, cfg.fine_tune_from)
    return multi_depth_classifier(clf, num_classes, cfg.image_size, cfg.augment, cfg.seed)


def open_run_dir(
    setup: RunSetup,
    cfg: TrainConfig,
    clf: Classifier,
    stage: str,
    distribution: dict[str, Any] | None = None,
) -> RunSetup:
    """Create the new run's folder and write, once, what the run will do: ``config.yaml`` (the
    planned options ``cfg``), classes, split, versions, and ``state.json`` (nothing trained yet,
    the first stage ``stage``).

    Args:
        setup: the new run.
        cfg: its options as planned.
        clf: its classifier as planned.
        stage: its first training stage.
        distribution: what ``config.yaml`` records of the devices that train it
            (:meth:`~imgclf.training.distribution.Distribution.record`); None: one device.
    """
    data = setup.data
    run_dir = create_run_dir(cfg.out, cfg.name or Path(data.root).resolve().name)
    record = distribution or {"strategy": "none", "replicas": 1}
    write_config(run_dir / RunFiles.CONFIG, cfg, {"distribution": record})
    write_json(run_dir / RunFiles.CLASSES, data.classes)
    write_manifest(run_dir / RunFiles.SPLIT, setup.items, data.classes, data.root)
    write_json(run_dir / RunFiles.VERSIONS, library_versions())
    if setup.label_issues is not None:
        setup.label_issues.write_csv(run_dir / LABEL_ISSUES_CSV)
    write_state(run_dir, stage, 0, trained=False)
    return replace(setup, cfg=cfg, clf=clf, run_dir=run_dir)


def resumable(run_dir: str | Path) -> Path:
    """``run_dir`` if it can be resumed, else a DataError saying why not: it finished, or it was
    stopped while it was being set up, before its folder held its plan."""
    path = Path(run_dir).expanduser()
    if (path / RunFiles.STATE).is_file():
        state = read_json(path / RunFiles.STATE)
        if int(state.get("stage_epochs", 0)) and not (path / RunFiles.LAST).is_file():
            raise DataError(
                f"run {str(run_dir)!r} cannot be resumed: its {RunFiles.LAST} is missing; "
                f"train it again: `imgclf train {read_config(path / RunFiles.CONFIG).data}`"
            )
        return path
    if not path.is_dir():
        raise DataError(f"run folder {str(run_dir)!r} does not exist")
    opened = (RunFiles.CONFIG, RunFiles.CLASSES, RunFiles.SPLIT)
    if all((path / f).is_file() for f in opened) and not (path / RunFiles.METRICS).is_file():
        return path  # stopped while its folder was being opened: it starts from the beginning
    check_run_dir(path)
    raise DataError(
        f"run {str(run_dir)!r} has nothing to resume (no {RunFiles.STATE}): it finished; "
        "train it again instead"
    )


def resume_run(run_dir: str | Path, cfg: TrainConfig) -> RunSetup:
    """Reopen an interrupted run: its folder, classes and split as saved, its state, its model
    rebuilt (with the trained head when the run stopped between stages)."""
    path = resumable(run_dir)
    classes = read_json(path / RunFiles.CLASSES)
    items = read_manifest(path / RunFiles.SPLIT, classes, cfg.data)
    missing = [i.path for i in items if not Path(i.path).exists()]
    if missing:
        raise DataError(
            f"image {missing[0]!r} of run {str(run_dir)!r} no longer exists; was the data "
            "folder moved?"
        )
    spec = get_spec(cfg.model)
    state = (
        read_json(path / RunFiles.STATE)
        if (path / RunFiles.STATE).is_file()
        else {"stage": "head" if spec.pretrained else "train", "stage_epochs": 0, "trained": False}
    )
    _truncate_history(path / RunFiles.HISTORY, state)
    old = path / RunFiles.DATA_REPORT
    doctor_report = read_json(old).get("doctor") if old.exists() else None
    data = ScannedData(cfg.data, classes, items)
    class_weight = train_class_weights(items, len(classes), cfg.class_weight)
    clf = classifier_for(spec, cfg, len(classes))
    best = path / RunFiles.MODEL
    if state.get("trained") and not int(state["stage_epochs"]) and best.is_file():
        # stopped between stages (or in the head stage): on from the best model so far
        clf.model.set_weights(load_model_file(best, "best model").get_weights())
    return RunSetup(cfg, data, items, clf, doctor_report, class_weight, state, path)


def preview_augmentation(setup: RunSetup) -> None:
    """``augmentation.png``: a few training images, one per class, each with random augmented
    views. The views come from a copy of the run's augmentation layers, so training's random state
    is untouched."""
    cfg, classes = setup.cfg, setup.data.classes
    train_items = setup.by_split["train"]
    layers = augmentation_layers(cfg.augment, cfg.seed + 1)
    if not layers or not train_items or setup.run_dir is None:
        return
    layer = keras.Sequential(layers, name="augmentation_preview")
    picked, seen = [], set()
    for item in train_items:  # one image of each class, in class order, until the preview is full
        if item.label not in seen:
            seen.add(item.label)
            picked.append(item)
    picked = sorted(picked, key=lambda i: i.label)[:PREVIEW_IMAGES]
    captions = [f"{classes[i.label]}: {Path(i.path).name}"[:28] for i in picked]
    paths = [i.path for i in picked]
    out = setup.run_dir / RunFiles.AUGMENTATION
    plot_augmentation_preview(paths, captions, cfg.image_size, layer, out)


def _truncate_history(path: Path, state: dict) -> None:
    """Drop history rows of epochs that ``last.keras`` does not hold (the epoch Ctrl-C cut
    short)."""
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    stage_rows = [r for r in body if r[0] == state["stage"]][: int(state["stage_epochs"])]
    kept = [r for r in body if r[0] != state["stage"]] + stage_rows
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *kept])
