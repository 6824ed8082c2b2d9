"""bench/shift_summary.py: pooling bench_shift logs over seeds (no training; made-up logs)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "shift_summary", Path(__file__).resolve().parents[1] / "bench" / "shift_summary.py"
)
summary = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(summary)


def _log(seed: int, models: dict[str, tuple[int, int, int]], stop_after: int | None = None) -> str:
    """A bench_shift log; per model: images right of 10 internal, 20 later, 20 camera."""
    lines = ["data x: 30 photos numbered < 5600 to train on, 20 later ones held out"]
    for name, (internal, later, camera) in models.items():
        lines += [
            f"== {name} ({{'report': '0'}}): model m at 128 px, augment 'flip', seed {seed}; "
            f"training 150 CPU s, 600 s wall; /tmp/runs/{name}",
            f"-- tta none: internal           n=10  accuracy {internal / 10:.4f} [0, 1]  "
            "(internal split)",
            f"later              n=20  accuracy {later / 20:.4f} [0, 1]  p=1 consistent",
            f"later+camera       n=20  accuracy {camera / 20:.4f} [0, 1]  p=1 consistent",
        ]
    return "\n".join(lines[:stop_after])


def test_parse_log_reads_each_model_and_set_and_renames_aliases():
    rows = summary.parse_log(
        _log(7, {"old": (9, 19, 17), "strong": (10, 18, 19)}), {"old": "default"}
    )
    assert [(r["name"], r["seed"], r["tta"], r["train_cpu"]) for r in rows] == [
        ("default", 7, "none", 150),
        ("strong", 7, "none", 150),
    ]
    assert rows[0]["accuracy"] == {"internal": 0.9, "later": 0.95, "later+camera": 0.85}


def test_a_set_left_out_leaves_every_table_and_lets_older_logs_pool():
    new = summary.parse_log(_log(7, {"default": (9, 19, 17)}))
    old = [{**r, "accuracy": {"internal": 1.0, "later": 0.9}} for r in new]
    rows = summary.complete(summary.leave_out(old + new, ["camera"]))
    assert [r["accuracy"] for r in rows] == [
        {"internal": 1.0, "later": 0.9},
        {"internal": 0.9, "later": 0.95},
    ]
    assert summary.leave_out(new, ["later+camera"])[0]["accuracy"] == rows[1]["accuracy"]


def test_an_interrupted_log_keeps_only_the_complete_rows():
    rows = summary.parse_log(_log(1, {"default": (9, 19, 17), "strong": (10, 18, 19)}, -1))
    assert [r["name"] for r in summary.complete(rows)] == ["default"]


def test_worst_gap_is_the_set_furthest_below_the_internal_split():
    gap, label = summary.worst_gap({"internal": 0.9, "later": 0.95, "later+camera": 0.85})
    assert (round(gap, 6), label) == (-5.0, "later+camera")


def test_pooled_and_paired_tables_count_seeds_within_the_target():
    rows = summary.parse_log(_log(1, {"default": (10, 20, 18), "strong": (10, 20, 19)}))
    rows += summary.parse_log(_log(2, {"default": (10, 20, 17), "strong": (10, 19, 19)}))
    pooled = summary.pooled_table(rows, target=5)
    assert pooled[2].startswith("| default | 1, 2 | 100.00 / 100.00 | 100.00 / 100.00 ")
    assert pooled[2].endswith("| -12.50 / -15.00 | 0 of 2 |")
    assert pooled[3].endswith("| -5.00 / -5.00 | 2 of 2 |")
    paired = summary.paired_table(rows, "default")
    assert paired[2] == (
        "| strong | 1, 2 | +0.00 ±0.00 (0↑ 0↓) | -2.50 ±3.54 (0↑ 1↓) | +7.50 ±3.54 (2↑ 0↓) "
        "| +7.50 ±3.54 (2↑ 0↓) |"
    )


def test_main_says_which_logs_held_no_rows(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty.log"
    empty.write_text("data x\n")
    monkeypatch.setattr("sys.argv", ["shift_summary.py", str(empty)])
    with pytest.raises(SystemExit, match="no complete rows with --tta none"):
        summary.main()
