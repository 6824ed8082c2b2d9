"""``train --drop-label-issues``: the training and validation images whose label is likely wrong
(:func:`~imgclf.training.label_issues.find_label_issues`, out of fold over those two splits) are
left out of the run before anything is trained.

The validation images are checked too because they choose the model: a validation image with a
wrong label makes a model that learnt the class well look confidently wrong, so with only the
training images cleaned the best checkpoint (lowest validation loss) stays at the head, before any
fine-tuning (measured on the digits with 5 % of the labels flipped: 84.5 % test accuracy against
the true labels, 95.6 % for the run that kept every image; docs/benchmarks.md, stop 15). The test
images are never checked: they still score the run with the labels they were given, so its test
metrics compare honestly with a run that kept every image. The run's ``label_issues.csv`` lists the
images left out (its report shows them), and ``split.csv`` no longer holds them, so ``--resume``
trains on the same images. A class keeps at least :data:`KEEP_PER_CLASS` of its checked images:
where the finder flags more, the class's least likely issues stay in.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace

from imgclf.data.scan import ImageItem
from imgclf.training.label_issues import LabelIssues, find_label_issues

LOG = logging.getLogger(__name__)

__all__ = ["CHECKED_SPLITS", "KEEP_PER_CLASS", "OPTION", "drop_label_issues"]

OPTION = "--drop-label-issues"
CHECKED_SPLITS = ("train", "val")  # never the test split
KEEP_PER_CLASS = 2  # a class is never emptied: the head needs images of every class


def _kept_per_class(
    found: LabelIssues, checked: list[ImageItem], classes: list[str]
) -> LabelIssues:
    """``found`` without the issues that would leave a class fewer than :data:`KEEP_PER_CLASS`
    checked images (the least likely go first: ``found`` is ordered most likely first)."""
    room = Counter(i.label for i in checked)
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
) -> tuple[list[ImageItem], LabelIssues, dict[str, int]]:
    """``items`` without the training and validation images whose label is likely wrong.

    Args:
        items: every image of the run, with its split.
        classes: class names in label order.
        seed: the folds' shuffle (the run's seed).
        progress: show a progress bar while the features are computed.

    Returns:
        ``(kept, found, left_out)``: the items to train, validate and test on; the images left out
        (``found.issues``, most likely first; ``found.checked`` images were checked); and how many
        of them each checked split lost.
    """
    checked = [i for i in items if i.split in CHECKED_SPLITS]
    found = find_label_issues(checked, classes, seed=seed, progress=progress, option=OPTION)
    found = _kept_per_class(found, checked, classes)
    dropped = {issue.path for issue in found.issues}
    left_out = Counter(i.split for i in checked if i.path in dropped)
    kept = [i for i in items if not (i.split in CHECKED_SPLITS and i.path in dropped)]
    counts = {split: left_out.get(split, 0) for split in CHECKED_SPLITS}
    LOG.info(
        f"label issues: {len(dropped)} of {found.checked} training and validation images likely "
        f"mislabelled, left out ({counts['train']} train, {counts['val']} val; {found.how}); "
        "the test images are kept as they are"
    )
    return kept, found, counts
