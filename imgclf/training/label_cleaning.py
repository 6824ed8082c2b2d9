"""``train --drop-label-issues``: the training images whose label is likely wrong
(:func:`~imgclf.training.label_issues.find_label_issues`, out of fold on the training split alone)
are left out of training before anything is trained.

Only the training split is checked and cleaned: the validation images still choose the model and
the test images still score it, with the labels they were given, so the run's test metrics compare
honestly with a run that kept every image. The run's ``label_issues.csv`` lists the images left out
(the report shows them), and ``split.csv`` no longer holds them, so ``--resume`` trains on the same
images. A class keeps at least :data:`KEEP_PER_CLASS` of its training images: where the finder
flags more, the class's least likely issues stay in.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace

from imgclf.constants import LABEL_ISSUE_FOLDS, LABEL_ISSUE_MODEL
from imgclf.data.scan import ImageItem
from imgclf.models.registry import choose_image_size, get_spec
from imgclf.training.label_issues import LabelIssues, check_label_data, find_label_issues

LOG = logging.getLogger(__name__)

__all__ = ["KEEP_PER_CLASS", "OPTION", "drop_label_issues"]

OPTION = "--drop-label-issues"
KEEP_PER_CLASS = 2  # a class is never emptied: the head needs images of every class


def _kept_per_class(found: LabelIssues, train: list[ImageItem], classes: list[str]) -> LabelIssues:
    """``found`` without the issues that would leave a class fewer than :data:`KEEP_PER_CLASS`
    training images (the least likely go first: ``found`` is ordered most likely first)."""
    room = Counter(i.label for i in train)
    for label in room:
        room[label] -= KEEP_PER_CLASS
    issues = []
    for issue in found.issues:
        label = classes.index(issue.given_label)
        if room[label] > 0:
            room[label] -= 1
            issues.append(issue)
    return replace(found, issues=issues)


def drop_label_issues(
    items: list[ImageItem], classes: list[str], seed: int, progress: bool
) -> tuple[list[ImageItem], LabelIssues]:
    """``items`` without the training images whose label is likely wrong, and what was found.

    Args:
        items: every image of the run, with its split.
        classes: class names in label order.
        seed: the folds' shuffle (the run's seed).
        progress: show a progress bar while the features are computed.

    Returns:
        ``(kept, found)``: the items to train, validate and test on, and the training images left
        out (``found.issues``, most likely first; ``found.checked`` training images were checked).
    """
    train = [i for i in items if i.split == "train"]
    check_label_data(train, classes, LABEL_ISSUE_FOLDS, OPTION)
    sides = [min(i.width, i.height) for i in train if i.width and i.height]
    image_size = choose_image_size(get_spec(LABEL_ISSUE_MODEL), sides)  # as the doctor's
    found = find_label_issues(
        train, classes, image_size, seed=seed, progress=progress, option=OPTION
    )
    found = _kept_per_class(found, train, classes)
    dropped = {issue.path for issue in found.issues}
    kept = [i for i in items if not (i.split == "train" and i.path in dropped)]
    LOG.info(
        f"label issues: {len(dropped)} of {found.checked} training images likely mislabelled, "
        f"left out of training ({found.folds}-fold out-of-fold accuracy {found.accuracy:.1%} on "
        f"the given labels, {LABEL_ISSUE_MODEL} features at {image_size} px); validation and "
        "test images are kept as they are"
    )
    return kept, found
