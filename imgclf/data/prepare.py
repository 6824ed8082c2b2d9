"""What ``train`` does to a scanned folder before anything is trained: diagnose it, drop the files
that
cannot be decoded, and split it keeping duplicate clusters and ``--group-by`` groups whole."""

from __future__ import annotations

import logging

from imgclf.config import TrainConfig, parse_duration
from imgclf.constants import DOCTOR_TIME_SHARE
from imgclf.data.balance import train_class_weights
from imgclf.data.doctor import DoctorReport, diagnose
from imgclf.data.groups import merge_groups
from imgclf.data.layout import check_split_classes
from imgclf.data.scan import ImageItem, ScannedData
from imgclf.data.split import assign_splits

LOG = logging.getLogger(__name__)

__all__ = ["prepare_training_data"]


def prepare_training_data(
    data: ScannedData, cfg: TrainConfig, verbose: int = 1
) -> tuple[ScannedData, list[ImageItem], DoctorReport]:
    """Diagnose ``data``, drop undecodable files, split keeping groups whole.

    Args:
        data: the scanned folder.
        cfg: the run's options; ``group_by``, ``duplicates_together``, ``val_fraction``,
            ``test_fraction``, ``seed``, ``class_weight`` and ``time_budget`` (the doctor then
            examines a sample: :data:`~imgclf.constants.DOCTOR_TIME_SHARE` of the budget) are used.
        verbose: when not 0, the doctor shows its progress bar. Its findings are logged, one line
            each (the command line shows them). Defaults to 1.

    Returns:
        The usable data, its items with their splits, and the report (with the train split's class
        weights when ``cfg.class_weight == "auto"``).
    """
    layout = check_split_classes(data, cfg.allow_missing_test_classes)  # before hashing: fail fast
    # under --time the doctor examines the sample its share of the budget allows
    seconds = DOCTOR_TIME_SHARE * parse_duration(cfg.time_budget) if cfg.time_budget else None
    report = diagnose(
        data, group_by=cfg.group_by, progress=bool(verbose), seconds=seconds, seed=cfg.seed
    )
    report.layout += layout
    usable = report.usable
    paths = [i.path for i in usable.items]
    clusters = []
    if cfg.duplicates_together:
        clusters = [[report.facts[i].path for i in members] for _, members in report.clusters]
    groups = merge_groups(paths, report.groups, clusters) if (report.groups or clusters) else None
    items = assign_splits(usable, cfg.val_fraction, cfg.test_fraction, cfg.seed, groups)
    report.set_splits(items)
    report.train_class_weights = train_class_weights(items, len(usable.classes), cfg.class_weight)
    for line in report.summary():
        LOG.info(line)
    if report.train_class_weights is not None:
        shown = ", ".join(
            f"{usable.classes[c]} {w:g}" for c, w in report.train_class_weights.items()
        )
        LOG.info(f"doctor: class weights (train split, --class-weight auto): {shown}")
    return usable, items, report
