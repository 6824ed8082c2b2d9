"""Label issues: images whose given label is likely wrong, found the way confident learning does
(Northcutt, Jiang & Chuang 2021, "Confident Learning: Estimating Uncertainty in Dataset Labels").

1. Features: the frozen EfficientNet-Lite0's activations at several depths
   (:data:`~imgclf.constants.LABEL_ISSUE_LAYERS`), average- and max-pooled, of every image, through
   the feature cache (:class:`~imgclf.training.activations.Activations`; a second look at the same
   files decodes nothing).
2. Out-of-fold probabilities: k logistic regressions (scikit-learn's ``cross_val_predict`` over a
   stratified, seeded k-fold split), so no image is scored by a model that saw its label.
3. The confident joint (:mod:`imgclf.training.confident_learning`): per-class thresholds, the count
   of (given, true) pairs, calibrated to the class counts; from it an estimate of how many images
   are mislabelled, and that many are flagged, those with the lowest out-of-fold probability of
   their given label first (cleanlab's ``low_self_confidence``;
   :data:`~imgclf.constants.LABEL_ISSUE_FILTER`).
4. Ranked by ``score``: the suggested label's probability minus the given label's (0–1, higher: more
   likely wrong).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from imgclf.config import TrainConfig
from imgclf.constants import LABEL_ISSUE_C, LABEL_ISSUE_FOLDS, LABEL_ISSUE_LAYERS, LABEL_ISSUE_MODEL
from imgclf.data.scan import ImageItem
from imgclf.errors import DataError
from imgclf.models.registry import choose_image_size, get_spec
from imgclf.training.confident_learning import find_issues, issue_scores

__all__ = [
    "CSV_COLUMNS",
    "LabelIssue",
    "LabelIssues",
    "check_label_data",
    "find_label_issues",
    "out_of_fold_probabilities",
    "pooled_features",
]

CSV_COLUMNS = ("path", "given_label", "suggested_label", "score")


@dataclass(frozen=True)
class LabelIssue:
    """One image whose label is likely wrong."""

    path: str
    given_label: str
    suggested_label: str
    score: float  # P(suggested) - P(given), out of fold: 0-1, higher is more likely wrong


@dataclass
class LabelIssues:
    """What :func:`find_label_issues` found: the issues, most likely first, and how it looked."""

    issues: list[LabelIssue]
    checked: int  # images scored out of fold
    classes: list[str]
    folds: int
    accuracy: float  # out-of-fold accuracy of the cheap models on the given labels
    image_size: int
    seconds: dict[str, float] = field(default_factory=dict)

    def write_csv(self, path: str | Path) -> Path:
        """Write ``label_issues.csv`` (columns :data:`CSV_COLUMNS`, most likely issue first).

        Args:
            path: the file to write.
        """
        from imgclf.atomic import write_text_atomic

        rows = [CSV_COLUMNS] + [
            (i.path, i.given_label, i.suggested_label, f"{i.score:.4f}") for i in self.issues
        ]
        write_text_atomic(path, _csv_text(rows))
        return Path(path)

    @property
    def how(self) -> str:
        """How the issues were found, in words (the doctor's and ``train``'s lines, the gallery)."""
        return (
            f"{self.folds}-fold out-of-fold accuracy {self.accuracy:.1%} on the given labels, "
            f"{LABEL_ISSUE_MODEL} features at {self.image_size} px"
        )

    def to_dict(self) -> dict:
        return {
            "checked": self.checked,
            "issues": len(self.issues),
            "folds": self.folds,
            "out_of_fold_accuracy": round(self.accuracy, 4),
            "image_size": self.image_size,
            "seconds": self.seconds,
        }


def _csv_text(rows: list) -> str:
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def check_label_data(
    items: list[ImageItem], classes: list[str], folds: int, option: str = "--labels"
) -> None:
    """Raise a one-line :class:`DataError` when ``items`` cannot be cross-validated: fewer than two
    classes, or a class with fewer images than ``folds``.

    Args:
        items: the labelled images.
        classes: class names in label order.
        folds: the k of k-fold cross-validation.
        option: the option the message names. Defaults to ``--labels`` (the doctor's).
    """
    counts = np.bincount([i.label for i in items], minlength=len(classes))
    present = [c for c, n in zip(classes, counts, strict=True) if n]
    if len(present) < 2:
        raise DataError(
            f"{option} needs images of at least 2 classes to compare; received {len(present)} "
            f"({', '.join(present) or 'none'})"
        )
    small = [f"{c!r} has {n}" for c, n in zip(classes, counts, strict=True) if 0 < n < folds]
    if small:
        raise DataError(
            f"{option} needs at least {folds} images in every class ({folds}-fold "
            f"cross-validation); {', '.join(small[:5])}{' …' if len(small) > 5 else ''}"
        )


def pooled_features(
    items: list[ImageItem], image_size: int, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The frozen pretrained backbone's pooled features of ``items``, through the feature cache.

    Args:
        items: the images.
        image_size: the backbone's input size.
        progress: show a progress bar while computing features that are not cached.

    Returns:
        ``(features, kept)``: one row per decodable image and the positions in ``items`` of those
        rows (an undecodable file drops out).
    """
    from imgclf.models.classifier import build_classifier
    from imgclf.models.multi_depth import multi_depth_features
    from imgclf.training.activations import Activations

    cfg = TrainConfig(model=LABEL_ISSUE_MODEL, image_size=image_size, fine_tune="none")
    clf = build_classifier(get_spec(cfg.model), 2, image_size, cfg.augment, cfg.seed)
    clf.backbone.trainable = False
    acts = Activations(
        cfg,
        clf,
        multi_depth_features(clf.backbone, LABEL_ISSUE_LAYERS),
        "+".join(LABEL_ISSUE_LAYERS),
        progress=progress,
    )
    # the label slot carries each image's position, so the kept rows map back to ``items``
    positioned = [replace(item, label=pos) for pos, item in enumerate(items)]
    features, kept = acts.get(positioned, 0)
    return np.asarray(features).reshape(len(kept), -1), kept.astype(np.int64)


def out_of_fold_probabilities(
    features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int, seed: int
) -> np.ndarray:
    """Each image's class probabilities from a logistic regression that did not see it
    (stratified, seeded k-fold; ``cross_val_predict``).

    Args:
        features: (n, d) features.
        labels: (n,) given labels.
        num_classes: the number of classes (a column for each, also for one absent here).
        folds: k.
        seed: the folds' shuffle.

    Returns:
        (n, num_classes) probabilities.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=LABEL_ISSUE_C, max_iter=300))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probs = cross_val_predict(model, features, labels, cv=cv, method="predict_proba")
    present = np.unique(labels)
    out = np.zeros((len(labels), num_classes))
    out[:, present] = probs
    return out


def find_label_issues(
    items: list[ImageItem],
    classes: list[str],
    image_size: int | None = None,
    folds: int = LABEL_ISSUE_FOLDS,
    seed: int = 42,
    progress: bool = False,
    option: str = "--labels",
) -> LabelIssues:
    """The images of ``items`` whose label is likely wrong, most likely first.

    Args:
        items: the labelled images (every class with at least ``folds`` of them).
        classes: class names in label order.
        image_size: the backbone's input size. Defaults to the size training would pick for these
            images (:func:`~imgclf.models.registry.choose_image_size`, their median shorter side).
        folds: k of the out-of-fold probabilities. Defaults to :data:`LABEL_ISSUE_FOLDS`.
        seed: the folds' shuffle. Defaults to 42.
        progress: show a progress bar while computing features.
        option: the option that asked, named by an error. Defaults to ``--labels``.
    """
    check_label_data(items, classes, folds, option)
    if image_size is None:
        sides = [min(i.width, i.height) for i in items if i.width and i.height]
        image_size = choose_image_size(get_spec(LABEL_ISSUE_MODEL), sides)
    start = time.perf_counter()
    features, kept = pooled_features(items, image_size, progress)
    seconds = {"features": round(time.perf_counter() - start, 2)}
    kept_items = [items[i] for i in kept]
    check_label_data(kept_items, classes, folds, option)  # undecodable files may have left too few
    labels = np.array([i.label for i in kept_items], np.int64)
    start = time.perf_counter()
    probs = out_of_fold_probabilities(features, labels, len(classes), folds, seed)
    mask = find_issues(labels, probs)
    scores, suggested = issue_scores(labels, probs)
    seconds["cross_validation"] = round(time.perf_counter() - start, 2)
    order = np.flatnonzero(mask)
    order = order[np.argsort(-scores[order], kind="stable")]
    issues = [
        LabelIssue(
            kept_items[i].path,
            classes[labels[i]],
            classes[suggested[i]],
            float(scores[i]),
        )
        for i in order
    ]
    accuracy = float(np.mean(probs.argmax(axis=1) == labels))
    return LabelIssues(issues, len(labels), list(classes), folds, accuracy, image_size, seconds)
