"""``imgclf runs [DIR]`` lists the runs of a folder, newest first, with their test accuracy and
its Wilson interval, accuracy on separate folders, wall time and status; ``--compare A B …``
writes one HTML page with the runs side by side. Run folders are written here as training leaves
them (config.yaml, metrics.json, history.csv, …), so nothing is trained."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from imgclf.cli import main
from imgclf.evaluation.stats import wilson_interval
from imgclf.reporting.catalog import list_runs, run_status
from imgclf.reporting.compare import comparison_context

CLASSES = ["ant", "<script>alert(1)</script>", "cow"]


def write_run(
    base: Path,
    name: str,
    *,
    accuracy: float = 0.8,
    n: int = 50,
    f1: tuple[float, ...] = (0.8, 0.7, 0.9),
    config: dict | None = None,
    started: float | None = None,
    metrics: bool = True,
    model: bool = True,
    interrupted: bool = False,
    state: bool = False,
    external: float | None = None,
    seconds: float = 75.0,
) -> Path:
    run = base / name
    run.mkdir(parents=True)
    cfg = {"data": "/data/bugs", "model": "cnn", "image_size": 32, "seed": 42, "epochs": 5}
    (run / "config.yaml").write_text(yaml.safe_dump({**cfg, **(config or {})}, sort_keys=False))
    (run / "classes.json").write_text(json.dumps(CLASSES))
    if model:
        (run / "model.keras").write_bytes(b"model")
    if metrics:
        per_class = {
            c: {"precision": v, "recall": v, "f1": v, "support": 5}
            for c, v in zip(CLASSES, f1, strict=True)
        }
        (run / "metrics.json").write_text(
            json.dumps(
                {
                    "accuracy": accuracy,
                    "n": n,
                    "macro_f1": sum(f1) / 3,
                    "per_class": per_class,
                    "classes": CLASSES,
                    "interrupted": interrupted,
                }
            )
        )
    if state:
        (run / "state.json").write_text(json.dumps({"stage": "fine_tune", "epoch": 2}))
    if external is not None:
        folder = run / "evaluations" / "elsewhere"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(
            json.dumps({"accuracy": external, "n": 30, "data": "/data/elsewhere"})
        )
    (run / "timings.json").write_text(json.dumps({"stages": {"training": seconds}}))
    rows = ["stage,epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds"]
    rows += [
        f"head,{e},{1 / e},{0.5 + e / 20},{1.2 / e},{0.4 + e / 20},0.001,1.0" for e in (1, 2, 3)
    ]
    (run / "history.csv").write_text("\n".join(rows) + "\n")
    when = started if started is not None else time.time()
    os.utime(run / "config.yaml", (when, when))
    return run


@pytest.fixture
def runs(tmp_path) -> Path:
    base = tmp_path / "runs"
    now = time.time()
    write_run(base, "old", accuracy=0.7, started=now - 3600, external=0.55)
    write_run(base, "new", accuracy=0.9, started=now - 60, config={"epochs": 9, "seed": 1})
    write_run(base, "stopped", started=now - 1800, interrupted=True, state=True)
    write_run(base, "crashed", started=now - 600, metrics=False, model=False)
    (base / "not_a_run").mkdir()
    return base


def test_runs_are_listed_newest_first_with_status(runs):
    listed = list_runs(runs)
    assert [r.name for r in listed] == ["new", "crashed", "stopped", "old"]
    assert {r.name: r.status for r in listed} == {
        "new": "complete",
        "crashed": "incomplete",
        "stopped": "interrupted",
        "old": "complete",
    }


def test_status_is_read_tolerantly(tmp_path):
    run = write_run(tmp_path, "r")
    assert run_status(run) == "complete"
    (run / "state.json").write_text(json.dumps({"status": "incomplete"}))  # an explicit marker wins
    assert run_status(run) == "incomplete"
    (run / "state.json").write_text("{not json")  # a torn file: still a status
    assert run_status(run) == "interrupted"
    (run / "state.json").unlink()
    (run / "metrics.json").unlink()
    assert run_status(run) == "incomplete"


def test_accuracy_has_its_wilson_interval_and_the_external_accuracy(runs):
    old = next(r for r in list_runs(runs) if r.name == "old")
    assert (old.low, old.high) == pytest.approx(wilson_interval(35, 50))
    assert old.external == [{"data": "/data/elsewhere", "accuracy": 0.55, "n": 30}]
    assert old.seconds == 75.0


def test_the_runs_command_prints_a_table(runs, capsys):
    assert main(["runs", str(runs)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:5] == ["name", "date", "data", "model", "size"]
    assert [line.split()[0] for line in lines[1:]] == ["new", "crashed", "stopped", "old"]
    low, high = wilson_interval(45, 50)
    assert f"0.900 [{low:.3f}, {high:.3f}] n=50" in lines[1]
    assert lines[1].rstrip().endswith("complete") and "1m15s" in lines[1]
    assert "0.550 n=30 (elsewhere)" in lines[4]
    assert lines[2].rstrip().endswith("incomplete")


def test_the_runs_command_as_json(runs, capsys):
    assert main(["runs", str(runs), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["new", "crashed", "stopped", "old"]
    assert rows[0]["accuracy"] == 0.9 and rows[0]["status"] == "complete"


def test_runs_errors_are_one_line(tmp_path, runs, capsys):
    assert main(["runs", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.strip().startswith("imgclf: error: runs folder ")
    assert main(["runs", str(runs), "--compare", "new"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("imgclf: error: invalid value for `--compare`") and "two or more" in err
    assert main(["runs", str(runs), "--compare", "new", "ghost"]) == 1
    assert "run 'ghost' is not a run folder" in capsys.readouterr().err


def test_compare_context_holds_differences_only(runs):
    context = comparison_context([runs / "old", runs / "new"])
    assert {row["key"]: row["values"] for row in context["config_differences"]} == {
        "seed": ["42", "1"],
        "epochs": ["5", "9"],
    }
    assert context["config_same"] == 3
    assert [r["label"] for r in context["runs"]] == ["old", "new"]
    assert context["curves"].startswith("data:image/png;base64,")


def test_compare_per_class_f1_differences_largest_first(tmp_path):
    a = write_run(tmp_path, "a", f1=(0.8, 0.7, 0.9))
    b = write_run(tmp_path, "b", f1=(0.8, 0.4, 0.95))
    rows = comparison_context([a, b])["f1"]
    assert [r["class"] for r in rows] == [CLASSES[1], "cow", "ant"]
    assert rows[0]["delta"] == pytest.approx(-0.3) and rows[2]["delta"] == pytest.approx(0.0)


def test_compare_writes_one_escaped_page(runs, tmp_path, capsys):
    out = tmp_path / "pages" / "compare.html"
    assert main(["runs", str(runs), "--compare", "old", str(runs / "new"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    html = out.read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count('data-metric="accuracy"') == 2


@pytest.mark.browser
def test_the_compare_page_renders_in_chromium(page, runs, tmp_path):
    out = tmp_path / "compare.html"
    assert main(["runs", str(runs), "--compare", "old", "new", "stopped", "--out", str(out)]) == 0
    page.goto(out.as_uri())
    assert page.errors == []
    for title in ("Metrics", "Validation curves", "Configuration differences", "Per-class F1"):
        assert page.locator("h2", has_text=title).count() == 1, title
    headers = page.locator("table.metrics th.run").all_inner_texts()
    assert headers == ["old", "new", "stopped"]
    assert page.locator("table.f1 td.name", has_text="<script>alert(1)</script>").count() == 1
    broken = page.evaluate(
        "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length"
    )
    assert broken == 0 and page.locator("img").count() == 1
    statuses = page.locator("td[data-status]").all_inner_texts()
    assert statuses == ["complete", "complete", "interrupted"]


@pytest.mark.usefixtures("private_cache")
def test_a_run_folder_made_by_train_is_listed_and_compared(trained_run, tmp_path):
    import shutil

    metrics = json.loads((trained_run.run_dir / "metrics.json").read_text())
    listed = {r.name: r for r in list_runs(trained_run.run_dir.parent)}
    real = listed[trained_run.run_dir.name]
    assert real.status == "complete" and real.model == "cnn" and real.image_size == 32
    assert real.accuracy == metrics["accuracy"] and real.n == metrics["n"]
    assert real.low <= real.accuracy <= real.high and real.seconds > 0
    copy = tmp_path / "copy"
    shutil.copytree(trained_run.run_dir, copy)
    context = comparison_context([trained_run.run_dir, copy])
    assert context["config_differences"] == [] and context["curves"]
    assert {row["class"] for row in context["f1"]} == set(trained_run.classes)


def test_a_torn_run_folder_is_still_listed(runs, capsys):
    (runs / "new" / "config.yaml").write_text("model: [unclosed\n")
    (runs / "old" / "metrics.json").write_text("{half")
    assert main(["runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "new" in out and "old" in out and "Traceback" not in out
