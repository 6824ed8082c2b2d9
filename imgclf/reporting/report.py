"""``report.html``: one self-contained page per run (every figure embedded as a base64 PNG, no
script, font or URL from outside), rendered from a Jinja2 template with autoescape on — class and
file names are user input. Each figure is also written as a PNG beside it.

:func:`finish_run` is what training calls once the best model is tested (predictions.csv,
calibration.json, report.html); :func:`build_report` is ``imgclf report RUN``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from imgclf.config import TrainConfig
from imgclf.evaluation.calibration import calibrate
from imgclf.evaluation.evaluate import External, save_evaluation
from imgclf.evaluation.inference import Scores, apply_temperature
from imgclf.evaluation.predictions import PredictionTable, read_predictions, write_predictions
from imgclf.reporting import sections
from imgclf.reporting.inside import inside_section
from imgclf.reporting.label_issues import LABEL_ISSUES_CSV, label_issues_section
from imgclf.reporting.templating import render as render_template
from imgclf.runs import (
    RunFiles,
    check_run_dir,
    read_config,
    read_distribution,
    read_json,
    write_json,
)

__all__ = [
    "SECTIONS",
    "build_evaluation_report",
    "build_report",
    "command_line",
    "finish_run",
    "render",
]

SECTIONS = ("data", "training", "results", "mistakes", "calibration", "inside", "reproducibility")


def render(context: dict) -> str:
    """The report's HTML from its template.

    Args:
        context: ``title``, ``sections`` (which to show) and one entry per section.
    """
    return render_template("report.html.j2", **context)


def _table(scores: Scores, classes: list[str]) -> PredictionTable:
    return PredictionTable(scores.paths, scores.labels, scores.probs, list(classes))


def finish_run(
    run_dir: Path,
    model,
    classes: list[str],
    test: Scores,
    val: Scores | None,
    image_size: int,
    report: bool = True,
    external: External | None = None,
) -> float:
    """After training: fit the temperature on ``val``, write calibration.json, predictions.csv
    (test, calibrated) and, when ``report``, report.html; with ``external`` (``--test-dir``), also
    its evaluation folder (and its report). Returns the temperature.

    Args:
        run_dir: the run folder.
        model: the best model.
        classes: class names in label order.
        test: uncalibrated scores of the test split (as metrics.json was computed from).
        val: uncalibrated scores of the validation split (None: no calibration).
        image_size: the run's input size. report: build report.html and its figures (False: ``imgclf
        report RUN`` builds them later). external: the separate test folder's scores and metrics
        (uncalibrated), or None.
    """
    t = 1.0
    if val is not None and len(val.labels):
        cal = calibrate(val.probs, val.labels, test.probs, test.labels)
        write_json(run_dir / RunFiles.CALIBRATION, cal)
        t = cal["temperature"]
    calibrated = Scores(test.paths, apply_temperature(test.probs, t), test.labels, test.failures)
    write_predictions(run_dir / RunFiles.PREDICTIONS, calibrated, classes)
    if report:
        build_report(run_dir, model, _table(calibrated, classes))
    if external is not None:
        scores = replace(external.scores, probs=apply_temperature(external.scores.probs, t))
        saved = save_evaluation(run_dir, replace(external, scores=scores), classes)
        if report:
            build_evaluation_report(run_dir, saved)
    return t


def _timed(name: str, seconds: dict, fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    seconds[name] = round(time.perf_counter() - start, 2)
    return result


@dataclass
class _RunInfo:
    path: Path
    config: TrainConfig
    classes: list[str]

    @property
    def image_size(self) -> int:
        return int(self.config.image_size or 224)


def build_report(
    run_dir: str | Path,
    model,
    table: PredictionTable | None = None,
    out: str | Path | None = None,
) -> Path:
    """Write ``report.html`` (and the figures' PNGs) for a finished run; ``imgclf report RUN``.

    Args:
        run_dir: the run folder.
        model: the run's model (``load_run(run_dir).model``).
        table: the test split's predictions (read from predictions.csv when None; computed through
            the prediction core when the run has none).
        out: the folder to write report.html and its figures into (created if needed; a run on a
            read-only disk is only read); None: the run folder.

    Returns:
        The path of report.html.
    """
    path = check_run_dir(run_dir)
    run = _RunInfo(path, read_config(path / RunFiles.CONFIG), read_json(path / RunFiles.CLASSES))
    out_dir = path if out is None else Path(out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    if table is None:
        table = _test_table(run, model, out_dir)
    metrics = read_json(run.path / RunFiles.METRICS)
    issues = label_issues_section(run.path / LABEL_ISSUES_CSV, run.image_size)
    if issues is not None:  # a run's: the images --drop-label-issues left out
        issues["left_out"] = run.config.drop_label_issues
    context = {
        "title": run.path.name,
        "sections": SECTIONS if issues is None else (*SECTIONS, "label_issues"),
        "label_issues": issues,
        "classes": run.classes,
        "model_name": run.config.model,
        "ensemble": run.config.ensemble,  # --ensemble N: the curves and feature maps are member 1's
        "image_size": run.image_size,
        "distribution": read_distribution(path),
        **_run_sections(run, model, table, metrics, out_dir),
        "reproducibility": sections.reproducibility_section(run.path),
    }
    context["subtitle"] = (
        f"{context['data']['total']} images · test accuracy {metrics['accuracy']:.4f}"
    )
    if issues is not None:  # of how many checked: data_report.json, which the data section read
        issues["checked"] = context["data"]["label_issues"].get("checked")
    target = out_dir / RunFiles.REPORT
    target.write_text(render(context), encoding="utf-8")
    return target


def _run_sections(
    run: _RunInfo, model, table: PredictionTable, metrics: dict, out_dir: Path
) -> dict:
    """The figure-making sections of the report, each timed (``report_seconds``)."""
    seconds: dict[str, float] = {}
    size = run.image_size
    return {
        "data": _timed(
            "data",
            seconds,
            sections.data_section,
            run.path,
            run.classes,
            run.config.data,
            size,
            out_dir,
        ),
        "training": _timed("training", seconds, sections.training_section, run.path, out_dir),
        "results": _timed("results", seconds, sections.results_section, out_dir, metrics),
        "mistakes": _timed("mistakes", seconds, sections.mistakes_section, table, size),
        "calibration": _timed(
            "calibration", seconds, sections.calibration_section, run.path, out_dir
        ),
        "inside": _timed("inside", seconds, inside_section, model, table, size, out_dir),
        "report_seconds": seconds,
    }


def _test_table(run: _RunInfo, model, out_dir: Path) -> PredictionTable:
    """predictions.csv of the run, or the test split scored now (runs made before reports
    existed; the file is then written into ``out_dir``)."""
    path = run.path / RunFiles.PREDICTIONS
    if path.is_file():
        return read_predictions(path, run.classes)
    path = out_dir / RunFiles.PREDICTIONS
    from imgclf.data.split import read_manifest
    from imgclf.evaluation.calibration import read_temperature
    from imgclf.evaluation.inference import score_items

    items = [
        i
        for i in read_manifest(
            run.path / RunFiles.SPLIT, run.classes, run.config.data, split="test"
        )
        if Path(i.path).exists()
    ]
    scores = score_items(
        model, items, run.image_size, run.config.batch_size, read_temperature(run.path)
    )
    write_predictions(path, scores, run.classes)
    return _table(scores, run.classes)


def build_evaluation_report(run_dir: str | Path, eval_dir: Path) -> Path:
    """``report.html`` of ``imgclf evaluate RUN DATA`` in ``RUN/evaluations/<folder>/``: results and
    mistakes on that folder (from the metrics.json and predictions.csv evaluate wrote there).

    Args:
        run_dir: the run folder.
        eval_dir: the evaluation's folder.
    """
    path = check_run_dir(run_dir)
    run = _RunInfo(path, read_config(path / RunFiles.CONFIG), read_json(path / RunFiles.CLASSES))
    metrics = read_json(eval_dir / RunFiles.METRICS)
    table = read_predictions(eval_dir / RunFiles.PREDICTIONS, run.classes)
    context = {
        "title": f"{path.name}: evaluation on {metrics.get('data', eval_dir.name)}",
        "subtitle": f"{metrics['n']} images · accuracy {metrics['accuracy']:.4f}",
        "sections": ("results", "mistakes"),
        "classes": run.classes,
        "model_name": run.config.model,
        "image_size": run.image_size,
        "results": sections.results_section(eval_dir, metrics),
        "mistakes": sections.mistakes_section(table, run.image_size),
        "report_seconds": {},
        "distribution": None,  # how the run trained is its own report's
    }
    out = eval_dir / RunFiles.REPORT
    out.write_text(render(context), encoding="utf-8")
    return out


def command_line() -> str:
    """The command that made this run, as typed (``imgclf …`` for the CLI, else the Python
    script)."""
    import shlex
    import sys

    argv = list(sys.argv)
    first = Path(argv[0]) if argv else None
    if first is not None and (
        first.name == "imgclf" or first.parts[-2:] == ("imgclf", "__main__.py")
    ):
        argv[0] = "imgclf"
    elif (
        first is not None and first.name == "__main__.py"
    ):  # python -m another_tool (pytest, a runner)
        argv = ["python", "-m", first.parent.name, *argv[1:]]
    elif argv:
        argv = ["python", *argv]
    return shlex.join(argv)
