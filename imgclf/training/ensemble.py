"""``imgclf train --ensemble N``: after the run's first model, N - 1 more on the same plan — the
same split, images, input size and epochs — each with its own seed (``--seed`` + k - 1: another
initial head, other augmented views and batch order; its own feature-cache entries), then one
``model.keras`` that averages their probabilities (:func:`imgclf.models.ensemble.average_models`),
which the end of the run tests, calibrates and reports like any model.

The run folder keeps the first member's files where a single run has them (``history.csv``, the
stages in ``timings.json``); member k trains in ``members/<k>/`` (its ``model.keras`` and
``history.csv``), and the first member's best model is moved to ``members/1/model.keras``. A Ctrl-C
during the first member leaves a run that ``--resume`` continues (then the other members); after
it, the run's model averages the members trained so far, and it is not resumed.

Measured on the sign-language digits' held-out sets (docs/benchmarks.md, Stop 16): ``--ensemble 2``
was level with or ahead of one model in 41 of 48 set × seed cells, at 2.05× the training CPU.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from imgclf.atomic import atomic_write, save_model_atomic
from imgclf.config import TrainConfig
from imgclf.errors import ConfigError
from imgclf.models.classifier import Classifier
from imgclf.models.ensemble import average_models
from imgclf.models.loading import load_model_file
from imgclf.runs import RunFiles, drop_resume_files, read_json
from imgclf.training.plan import RunPlan
from imgclf.training.recipe import recipe_for_run
from imgclf.training.session import Session
from imgclf.training.setup import RunSetup, classifier_for

__all__ = ["MEMBERS", "check_resumable", "save_ensemble", "train_members"]

MEMBERS = "members"  # the run folder's sub-folder of the ensemble's members


def member_folder(run_dir: Path, k: int) -> Path:
    """Where member ``k`` (1-based) keeps its files."""
    return run_dir / MEMBERS / str(k)


def train_members(
    first: Session,
    setup: RunSetup,
    plan: RunPlan,
    run_stages: Callable[[Session], bool],
) -> tuple[bool, int]:
    """Train members 2 … ``--ensemble`` one after the other, each in its own folder.

    Args:
        first: the first member's session (its stages done, not interrupted).
        setup: the run.
        plan: the run's plan, which every member carries out.
        run_stages: trains one session's stages as its plan says; returns True when Ctrl-C
            stopped it.

    Returns:
        ``(interrupted, members)``: whether a Ctrl-C stopped a member (no further one starts), and
        how many members trained, the first and an interrupted one included.
    """
    cfg = first.cfg
    for k in range(2, cfg.ensemble + 1):
        member_cfg = replace(cfg, seed=cfg.seed + k - 1)
        folder = member_folder(first.run_dir, k)
        folder.mkdir(parents=True, exist_ok=True)
        first.say(f"\nensemble member {k} of {cfg.ensemble} (seed {member_cfg.seed}): {folder}")
        clf = classifier_for(setup.clf.spec, member_cfg, first.num_classes)
        session = Session(
            member_cfg,
            folder,
            clf,
            first.num_classes,
            first.verbose,
            _own_recipe(plan, clf, member_cfg),
            first.class_weight,
            None,
            first.interrupts,
            first.distribution,
        )
        interrupted = run_stages(session)
        drop_resume_files(folder)  # a member is never resumed
        if interrupted:
            return True, k
    return False, cfg.ensemble


def _own_recipe(plan: RunPlan, clf: Classifier, cfg: TrainConfig) -> RunPlan:
    """``plan`` with its recipe cut from ``clf``'s own backbone: the first member's recipe holds
    that member's layers, which another member must not train."""
    if plan.recipe is None:
        return plan
    recipe = recipe_for_run(clf, cfg, len(plan.train_items), len(plan.val_items))
    return replace(plan, recipe=recipe)


def save_ensemble(first: Session, members: int) -> None:
    """Move the first member's best model to ``members/1/`` and save, as the run's
    ``model.keras``, the average of every member that has a checkpoint.

    Args:
        first: the first member's session.
        members: how many members trained (:func:`train_members`).
    """
    run_dir = first.run_dir
    drop_resume_files(run_dir)  # the first member is finished
    paths = [member_folder(run_dir, k) / RunFiles.MODEL for k in range(1, members + 1)]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    os.replace(first.model_path, paths[0])
    paths = [p for p in paths if p.is_file()]  # a member stopped before its first checkpoint: out
    if len(paths) == 1:
        atomic_write(first.model_path, lambda tmp: shutil.copyfile(paths[0], tmp))
        first.say("ensemble: one member has a checkpoint; model.keras is that member alone")
        return
    models = [load_model_file(p, "ensemble member") for p in paths]
    save_model_atomic(average_models(models), first.model_path)
    names = ", ".join(p.parent.name for p in paths)
    first.say(f"ensemble: model.keras averages the probabilities of members {names}")


def check_resumable(config: TrainConfig, run_dir: Path) -> None:
    """Refuse ``--resume`` of an ``--ensemble`` run stopped after its first model (one stopped
    during it goes on: the first model's stages, then the other members).

    Args:
        config: the interrupted run's options.
        run_dir: its folder.
    """
    if config.ensemble == 1 or not (run_dir / MEMBERS).is_dir():
        return
    metrics = run_dir / RunFiles.METRICS
    if metrics.is_file() and not read_json(metrics).get("interrupted", False):
        return  # it finished, which resuming says
    raise ConfigError(
        f"--resume cannot continue this --ensemble {config.ensemble} run: it stopped after "
        "its first model; its model.keras, made of what was trained before, is what `imgclf "
        "predict` and `export` take as it is; or train it again"
    )
