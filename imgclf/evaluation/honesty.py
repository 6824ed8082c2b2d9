"""The honesty check: does the accuracy measured on the run's own split hold on pictures from
elsewhere?

The internal test split is drawn from the same folder as the training images; a separate folder
(``imgclf train DATA --test-dir OTHER``, or ``imgclf evaluate RUN OTHER``) says what a user will get
on new pictures. Both accuracies are shown side by side, each with its Wilson 95 % interval, and
compared with **Fisher's exact test** on the 2x2 table (correct, wrong) x (internal, external),
two-sided, at :data:`ALPHA`. Why this test:

- it is exact: accuracies near 1 on a few hundred images (0.99 vs 0.96) are where the normal
  approximation of the two-proportion z-test is poor, and where imgclf's runs live;
- "the two 95 % intervals do not overlap" is a much stricter rule than a 5 % test (for equal widths
  it is about p < 0.006) and misses shifts the data clearly show;
- the two sets are independent samples of images scored by one fixed model, which is what it
  assumes.

Only images the run has not seen count as "from elsewhere": when the folder holds images of the
run's training or validation split (same path, same content or a near duplicate; see
:mod:`imgclf.evaluation.overlap`), the check compares the internal accuracy with the *unseen* part
alone (:func:`honesty_check`), and when every image was seen it says that no external estimate
exists (:func:`no_external_estimate`) instead of comparing anything.

A difference in either direction is reported (a better external score can mean the internal split is
harder, or mislabelled), but the warning is worded for the usual case: the internal number
overstates.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ALPHA",
    "TEST_NAME",
    "compare_accuracy",
    "honesty_check",
    "no_external_estimate",
    "honesty_line",
]

ALPHA = 0.05
TEST_NAME = "Fisher's exact test"


def _accuracy(stats: Mapping, n: int, name: str) -> dict:
    acc = stats["accuracy"]
    correct = round(acc["value"] * n)
    return {
        "name": name,
        "accuracy": float(acc["value"]),
        "low": float(acc["low"]),
        "high": float(acc["high"]),
        "n": int(n),
        "correct": correct,
    }


def compare_accuracy(
    internal: Mapping,
    external: Mapping,
    external_name: str,
    internal_name: str = "internal test split",
) -> dict:
    """Internal and external accuracy side by side, and whether they differ beyond chance.

    Args:
        internal: the run's metrics (metrics.json's contents or ``Metrics.to_dict()``): ``n`` and
            ``statistics.accuracy`` with its interval.
        external: the same for the separate folder.
        external_name: how the separate folder is named in the report (its folder name).
        internal_name: how the run's own split is named.
    """
    from scipy.stats import fisher_exact

    a = _accuracy(internal["statistics"], internal["n"], internal_name)
    b = _accuracy(external["statistics"], external["n"], external_name)
    if a["n"] and b["n"]:
        table = [[a["correct"], a["n"] - a["correct"]], [b["correct"], b["n"] - b["correct"]]]
        p = float(fisher_exact(table, alternative="two-sided").pvalue)
    else:
        p = 1.0
    result = {
        "internal": a,
        "external": b,
        "difference": b["accuracy"] - a["accuracy"],
        "test": TEST_NAME,
        "alpha": ALPHA,
        "p_value": p,
        "differs": p < ALPHA,
        "estimate": True,
    }
    result["message"] = honesty_line(result)
    return result


def no_external_estimate(internal: Mapping, external_name: str, internal_name: str) -> dict:
    """The honesty check's result when every image of the separate folder was seen in training or
    validation: nothing is compared, and the message says so.

    Args:
        internal: the run's metrics (``n`` and ``statistics.accuracy``).
        external_name: the separate folder's name.
        internal_name: how the run's own split is named.
    """
    a = _accuracy(internal["statistics"], internal["n"], internal_name)
    empty = {"name": external_name, "accuracy": None, "low": None, "high": None, "n": 0}
    return {
        "internal": a,
        "external": {**empty, "correct": 0},
        "difference": None,
        "test": TEST_NAME,
        "alpha": ALPHA,
        "p_value": None,
        "differs": False,
        "estimate": False,
        "message": (
            f"WARNING honesty check: every image of {external_name!r} was seen by the run in "
            "training or validation, so no external estimate exists: its accuracy says nothing "
            f"about new pictures; the only estimate is {a['accuracy']:.4f} "
            f"[{a['low']:.4f}, {a['high']:.4f}] on the {internal_name} (n={a['n']})"
        ),
    }


def honesty_check(
    internal: Mapping, external: Mapping, external_name: str, internal_name: str
) -> dict:
    """:func:`compare_accuracy` on the images of the separate folder that the run never saw: its
    ``overlap`` (:func:`imgclf.evaluation.overlap.overlap_summary`) says which part that is; the
    overlap line is kept in ``"seen"``.

    Args:
        internal: the run's metrics (``n`` and ``statistics.accuracy``).
        external: the separate folder's metrics, with ``overlap`` when it was checked.
        external_name: the separate folder's name. internal_name: how the run's own split is named.
    """
    overlap = external.get("overlap") or {}
    if not overlap.get("message"):  # nothing seen (or not checked): the whole folder is new
        return compare_accuracy(internal, external, external_name, internal_name)
    if not overlap["unseen"]:
        check = no_external_estimate(internal, external_name, internal_name)
    else:
        unseen = {"n": overlap["unseen"], "statistics": {"accuracy": overlap["accuracy_unseen"]}}
        name = f"{external_name}, unseen part"
        check = compare_accuracy(internal, unseen, name, internal_name)
    return {**check, "seen": overlap["message"]}


def honesty_line(check: Mapping) -> str:
    """One line for the terminal and the report: the two accuracies, the test, and what it means.

    Args:
        check: :func:`compare_accuracy`'s result.
    """
    a, b = check["internal"], check["external"]

    def show(x: Mapping) -> str:
        return f"{x['accuracy']:.4f} [{x['low']:.4f}, {x['high']:.4f}] on {x['name']} (n={x['n']})"

    numbers = f"accuracy {show(b)} vs {show(a)}; {check['test']} p = {check['p_value']:.2g}"
    if not check["differs"]:
        return f"honesty check: {numbers}: no difference beyond chance"
    if b["accuracy"] < a["accuracy"]:
        return (
            f"WARNING honesty check: {numbers}: the internal split overstates the "
            "accuracy to expect on pictures like "
            f"{b['name']!r} by {100 * (a['accuracy'] - b['accuracy']):.1f} percentage points"
        )
    return (
        f"WARNING honesty check: {numbers}: {b['name']!r} scores higher than the internal "
        "split; is the internal split harder or mislabelled?"
    )
