"""imgclf.evaluation.metrics: scikit-learn metrics as one typed, printable result."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgclf.evaluation.metrics import Metrics, compute_metrics, format_metrics
from imgclf.evaluation.metrics_text import text_width

CLASSES = ["cat", "dog", "fox"]
Y_TRUE = np.array([0, 0, 1, 1, 2])
Y_PRED = np.array([0, 1, 1, 1, 0])


@pytest.fixture
def metrics():
    return compute_metrics(Y_TRUE, Y_PRED, CLASSES, "test")


def test_against_hand_computed_values(metrics):
    assert metrics.accuracy == pytest.approx(3 / 5)
    assert metrics.n == 5
    assert metrics.split == "test"
    assert metrics.classes == CLASSES
    # cat: predicted twice (1 right) -> precision 1/2; 2 true (1 found) -> recall 1/2
    assert metrics.per_class["cat"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    # dog: predicted 3 times (2 right) -> 2/3; both found -> recall 1; f1 = 2*(2/3)/(5/3) = 0.8
    assert metrics.per_class["dog"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    # fox: never predicted -> 0 (zero_division=0), not a warning or NaN
    assert metrics.per_class["fox"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert metrics.macro_f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert metrics.confusion_matrix == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_perfect_predictions():
    m = compute_metrics(np.array([0, 1, 1]), np.array([0, 1, 1]), ["a", "b"], "val")
    assert (m.accuracy, m.macro_f1) == (1.0, 1.0)
    assert m.confusion_matrix == [[1, 0], [0, 2]]


def test_class_absent_from_the_data_still_has_a_row():
    m = compute_metrics(np.array([0, 0]), np.array([0, 0]), ["a", "b", "c"], "all")
    assert m.confusion_matrix == [[2, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert m.per_class["c"]["support"] == 0


def test_to_dict_is_json_and_round_trips(metrics):
    d = json.loads(json.dumps(metrics.to_dict()))
    assert d["accuracy"] == pytest.approx(0.6)
    assert Metrics.from_dict({**d, "interrupted": False, "train_seconds": 1.0}) == metrics


def test_format_metrics_names_every_class(metrics):
    text = format_metrics(metrics)
    assert text.splitlines()[0] == "test: accuracy 0.6000  macro F1 0.4333  n=5"
    for name in CLASSES:
        assert (
            sum(line.startswith(name) for line in text.splitlines()) == 2
        )  # report row + matrix row
    assert "confusion matrix (rows: true, columns: predicted)" in text
    assert "0.667" in text and "0.800" in text
    matrix_rows = [line.split() for line in text.splitlines()[-3:]]
    assert matrix_rows == [["cat", "1", "1", "0"], ["dog", "0", "2", "0"], ["fox", "1", "0", "0"]]


def test_format_metrics_long_class_names_keep_columns_aligned():
    m = compute_metrics(np.array([0, 1]), np.array([0, 1]), ["a_very_long_class_name", "b"], "test")
    lines = format_metrics(m).splitlines()
    rows = [line for line in lines if line.startswith(("a_very_long_class_name", "b "))]
    assert len({len(r) for r in rows[:2]}) == 1  # the two report rows have equal width


def test_no_samples_gives_empty_metrics():
    m = compute_metrics(np.zeros(0, np.int64), np.zeros(0, np.int64), ["a", "b"], "test")
    assert m.n == 0
    assert m.accuracy == 0.0
    assert m.confusion_matrix == [[0, 0], [0, 0]]


def _stats(correct: int, n: int) -> dict:
    from imgclf.evaluation.stats import wilson_interval

    low, high = wilson_interval(correct, n)
    return {
        "n": n,
        "split": "test",
        "statistics": {"accuracy": {"value": correct / n, "low": low, "high": high}},
    }


def test_the_honesty_check_is_fishers_exact_test_on_right_and_wrong_counts():
    from scipy.stats import fisher_exact

    from imgclf.evaluation.honesty import compare_accuracy

    shifted = compare_accuracy(_stats(198, 200), _stats(150, 200), "elsewhere")
    assert shifted["differs"] and shifted["p_value"] == pytest.approx(
        fisher_exact([[198, 2], [150, 50]]).pvalue
    )
    assert shifted["message"].startswith("WARNING honesty check: accuracy 0.7500 [")
    assert "overstates" in shifted["message"] and "24.0 percentage points" in shifted["message"]
    same = compare_accuracy(_stats(190, 200), _stats(183, 200), "elsewhere")
    assert not same["differs"] and "no difference beyond chance" in same["message"]
    # the intervals of 0.99 (n=200) and 0.95 (n=300) overlap, yet the difference is real at 5 %
    close = compare_accuracy(_stats(198, 200), _stats(285, 300), "elsewhere")
    assert close["differs"] and close["internal"]["low"] < close["external"]["high"]
    better = compare_accuracy(_stats(150, 200), _stats(198, 200), "elsewhere")
    assert better["differs"] and "scores higher" in better["message"]


def _matrix_block(text: str) -> list[str]:
    lines = text.splitlines()
    return lines[lines.index("confusion matrix (rows: true, columns: predicted)") :]


LONG = ["golden_retriever_puppy", "labrador_retriever_puppy", "german_shepherd_adult"]


def test_confusion_matrix_shows_full_class_names_when_they_fit():
    m = compute_metrics(np.array([0, 1, 2]), np.array([0, 1, 1]), LONG, "test")
    block = _matrix_block(format_metrics(m, width=200))
    assert block[1].split() == LONG  # the header: every name in full
    assert [line.split()[0] for line in block[2:5]] == LONG
    assert not any(line.startswith("legend:") for line in block)


def test_confusion_matrix_abbreviates_only_what_does_not_fit_and_gives_a_legend():
    m = compute_metrics(np.array([0, 1, 2]), np.array([0, 1, 1]), LONG, "test")
    block = _matrix_block(format_metrics(m, width=60))
    header = block[1].split()
    assert all(h.endswith("…") for h in header) and len(set(header)) == 3
    assert all(text_width(line) <= 60 for line in block[1:5])
    assert [line.split()[0] for line in block[2:5]] == LONG  # rows keep the full names
    legend = " ".join(line for line in block[5:])
    assert legend.startswith("legend:")
    for short, full in zip(header, LONG, strict=True):
        assert f"{short} = {full}" in legend


def test_confusion_matrix_numbers_columns_when_even_short_names_do_not_fit():
    classes = [f"class_with_a_long_name_{i:02d}" for i in range(30)]
    y = np.arange(30)
    block = _matrix_block(format_metrics(compute_metrics(y, y, classes, "test"), width=150))
    assert block[1].split() == [str(i) for i in range(1, 31)]
    assert all(text_width(line) <= 150 for line in block[1:32])
    legend = " ".join(block[32:])
    assert "1 = class_with_a_long_name_00" in legend and "30 = class_with_a_long_name_29" in legend


def test_confusion_matrix_rows_align_with_wide_characters():
    classes = ["猫", "犬のしっぽ", "cat"]
    m = compute_metrics(np.array([0, 1, 2]), np.array([0, 1, 2]), classes, "test")
    block = _matrix_block(format_metrics(m, width=120))
    assert len({text_width(line) for line in block[1:5]}) == 1
    assert block[1].split() == classes
