"""Which images to flag, on the same out-of-fold probabilities: cleanlab's ``filter_by`` variants
(in NumPy) and self-confidence ranking with three estimates of the count, on the sign-language
digits with 5 % of the labels flipped, for several flip seeds::

    .venv/bin/python bench/probe_label_filters.py --flip-seeds 0 1 2

In process: the doctor's features of every photo are extracted once (``pooled_features``, the
feature cache in ``--work``/cache) and kept as ``--work``/features.npy; a flip only changes the
labels. The logistic regressions are fitted exactly but cheaper: an L2-penalised model's weights
lie in the span of its training rows, so each fold's standardised features are projected on that
span (n_train dimensions instead of 12,736); the probabilities equal ``out_of_fold_probabilities``'.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from bench_label_issues import flip_plan
from common import DIGITS


def features(work: Path) -> tuple[np.ndarray, list[Path]]:
    """The doctor's features of every photo of the digits (cached in ``work``) and their files."""
    os.environ.setdefault("IMGCLF_CACHE", str(work / "cache"))
    from imgclf.constants import LABEL_ISSUE_MODEL
    from imgclf.data.scan import scan_folder
    from imgclf.models.registry import choose_image_size, get_spec
    from imgclf.training.label_issues import pooled_features

    scanned = scan_folder(DIGITS)
    files = [Path(i.path) for i in scanned.items]
    if (work / "features.npy").exists():
        return np.load(work / "features.npy"), files
    sides = [min(i.width, i.height) for i in scanned.items]
    size = choose_image_size(get_spec(LABEL_ISSUE_MODEL), sides)
    feats, kept = pooled_features(scanned.items, size)
    assert len(kept) == len(files), "every photo decodes"
    np.save(work / "features.npy", feats)
    return feats, files


def out_of_fold(x: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """``out_of_fold_probabilities`` on each fold's training-row span (exact, cheaper)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from imgclf.constants import LABEL_ISSUE_C

    probs = np.zeros((len(labels), labels.max() + 1))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in cv.split(x, labels):
        mean, std = x[train].mean(0), x[train].std(0)
        std[std == 0] = 1
        a, b = (x[train] - mean) / std, (x[test] - mean) / std
        w, u = np.linalg.eigh(a @ a.T)
        keep = w > w.max() * 1e-10
        basis = (a.T @ u[:, keep]) / np.sqrt(w[keep])
        model = LogisticRegression(C=LABEL_ISSUE_C, max_iter=300).fit(a @ basis, labels[train])
        probs[np.ix_(test, model.classes_)] = model.predict_proba(b @ basis)
    return probs


def counts(labels: np.ndarray, probs: np.ndarray) -> dict[str, int]:
    """cleanlab's two estimates of the number of issues and the adopted midpoint."""
    from imgclf.training.confident_learning import confident_joint, estimated_issue_count

    joint = confident_joint(labels, probs)
    return {
        "off_diagonal": len(np.flatnonzero(confident_learning(labels, probs))),
        "calibrated": int(round(joint.sum() - np.trace(joint))),
        "midpoint (adopted)": estimated_issue_count(labels, probs),
    }


def confident_learning(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """cleanlab's ``confident_learning``: the raw joint's off-diagonal, not predicted as given."""
    from imgclf.training.confident_learning import confidently

    confident, true = confidently(labels, probs)
    return confident & (true != labels) & (probs.argmax(axis=1) != labels)


def by_class(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """cleanlab's ``prune_by_class``: per class, its row's estimated count of lowest P(given)."""
    from imgclf.training.confident_learning import confident_joint

    joint, mask = confident_joint(labels, probs), np.zeros(len(labels), bool)
    for k in range(probs.shape[1]):
        members = np.flatnonzero(labels == k)
        n = int(round(joint[k].sum() - joint[k, k]))
        mask[members[np.argsort(probs[members, k], kind="stable")[:n]]] = True
    return mask & (probs.argmax(axis=1) != labels)


def lowest(labels: np.ndarray, score: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` images of lowest ``score``."""
    mask = np.zeros(len(labels), bool)
    mask[np.argsort(score, kind="stable")[:n]] = True
    return mask


def variants(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    """Every filter's mask."""
    from imgclf.training.confident_learning import find_issues, issue_scores

    noise = find_issues(labels, probs, "prune_by_noise_rate")
    self_confidence = probs[np.arange(len(labels)), labels]
    margin = -issue_scores(labels, probs)[0]
    out = {
        "prune_by_noise_rate": noise,
        "prune_by_class": by_class(labels, probs),
        "both": noise & by_class(labels, probs),
        "confident_learning": confident_learning(labels, probs),
        "predicted_neq_given": probs.argmax(axis=1) != labels,
    }
    for name, n in counts(labels, probs).items():
        out[f"self-confidence, count {name}"] = lowest(labels, self_confidence, n)
        out[f"normalised margin, count {name}"] = lowest(labels, margin, n)
    wrong = probs.argmax(axis=1) != labels
    return {k: v & wrong for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flip-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fold-seed", type=int, default=42, help="the folds' shuffle (doctor: 42)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/probe_label_filters"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    x, files = features(args.work)
    x = x.astype(np.float64)
    classes = sorted({f.parent.name for f in files})
    true = np.array([classes.index(f.parent.name) for f in files])
    for seed in args.flip_seeds:
        plan = {(f.parent.name, f.name): c for f, c in flip_plan(DIGITS, 0.05, seed).items()}
        given = np.array([classes.index(plan[f.parent.name, f.name]) for f in files])
        probs = out_of_fold(x, given, 5, args.fold_seed)
        wrong = given != true
        accuracy = np.mean(probs.argmax(axis=1) == given)
        print(f"flip seed {seed}: {wrong.sum()} flipped, out-of-fold accuracy {accuracy:.3f}")
        for name, mask in variants(given, probs).items():
            hit = int((mask & wrong).sum())
            print(
                f"  {name:42s} {mask.sum():4d} finds, recall {hit / wrong.sum():.3f}, "
                f"precision {hit / max(mask.sum(), 1):.3f}"
            )


if __name__ == "__main__":
    main()
