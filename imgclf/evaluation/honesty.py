"""The honesty check: does the accuracy measured on the run's own split hold on pictures from
elsewhere?

The internal test split is drawn from the same folder as the training images; a separate folder
(``imgclf train DATA --test-dir OTHER``, or ``imgclf evaluate RUN OTHER``) says what a user will get
on
new pictures. Both accuracies are shown side by side, each with its Wilson 95 % interval, and
compared
with **Fisher's exact test** on the 2x2 table (correct, wrong) x (internal, external), two-sided, at
:data:`ALPHA`. Why this test:

- it is exact: accuracies near 1 on a few hundred images (0.99 vs 0.96) are where the normal
  approximation of the two-proportion z-test is poor, and where imgclf's runs live;
- "the two 95 % intervals do not overlap" is a much stricter rule than a 5 % test (for equal widths
it
  is about p < 0.006) and misses shifts the data clearly show;
- the two sets are independent samples of images scored by one fixed model, which is what it
assumes.

A difference in either direction is reported (a better external score can mean the internal split is
harder, or mislabelled), but the warning is worded for the usual case: the internal number
overstates.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ALPHA", "TEST_NAME", "compare_accuracy", "honesty_line"]

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
    }
    result["message"] = honesty_line(result)
    return result


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
