"""The report's sections, each built from the run folder's files into plain data for the template
(numbers, tables, and figures as data URIs). Figures are also written as PNGs beside the report."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from imgclf.data.decode import load_image
from imgclf.data.split import SPLITS
from imgclf.evaluation.predictions import PredictionTable
from imgclf.reporting import figures
from imgclf.reporting.curves import best_epoch, plot_history, read_history
from imgclf.reporting.extra import extra_blocks
from imgclf.reporting.style import array_data_uri, png_data_uri
from imgclf.runs import RunFiles, read_json

__all__ = [
    "data_section",
    "training_section",
    "results_section",
    "mistakes_section",
    "calibration_section",
    "reproducibility_section",
    "MAX_MISTAKES",
    "SAMPLES_PER_CLASS",
    "THUMBNAIL",
]

MAX_MISTAKES = 120  # most confident first; predictions.csv holds them all
SAMPLES_PER_CLASS = 4
THUMBNAIL = 112  # px, gallery images


def _png(path: Path) -> str | None:
    return png_data_uri(path.read_bytes()) if path.is_file() else None


def _split_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / RunFiles.SPLIT, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _resolve(path: str, root: str) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else Path(root) / p)


def data_section(
    run_dir: Path, classes: list[str], root: str, image_size: int, out_dir: Path | None = None
) -> dict:
    """Images per class and split, sample images per class, the augmentation preview, doctor
    findings.

    Args:
        run_dir: the run folder.
        classes: class names in label order.
        root: the data folder (split.csv paths are relative to it).
        image_size: the run's input size.
        out_dir: where to write class_counts.png and samples.png (default: ``run_dir``).
    """
    out_dir = out_dir or run_dir
    rows = _split_rows(run_dir)
    counts: dict[str, dict[str, int]] = {
        s: {} for s in SPLITS if any(r["split"] == s for r in rows)
    }
    for r in rows:
        counts.setdefault(r["split"], {}).setdefault(r["label"], 0)
        counts[r["split"]][r["label"]] += 1
    per_class = 1 if len(classes) > 12 else SAMPLES_PER_CLASS
    samples: dict[str, list[np.ndarray]] = {c: [] for c in classes}
    for r in rows:
        if r["split"] == "train" and len(samples[r["label"]]) < per_class:
            try:
                samples[r["label"]].append(
                    load_image(_resolve(r["path"], root), min(image_size, 128)).astype("uint8")
                )
            except Exception:  # noqa: BLE001, S112  (training already listed unreadable files)
                continue
    report = (
        read_json(run_dir / RunFiles.DATA_REPORT)
        if (run_dir / RunFiles.DATA_REPORT).is_file()
        else {}
    )
    doctor = report.get("doctor") or {}
    return {
        "counts": counts,
        "total": len(rows),
        "class_counts": png_data_uri(
            figures.plot_class_counts(counts, classes, out_dir / "class_counts.png")
        ),
        "samples": png_data_uri(figures.plot_sample_grid(samples, out_dir / "samples.png")),
        "augmentation": _png(run_dir / RunFiles.AUGMENTATION),
        "skipped": report.get("skipped", []),
        "duplicates": doctor.get("duplicates", {}),
        "balance": doctor.get("balance", {}),
        "warnings": doctor.get("warnings", []),
        "label_issues": doctor.get("label_issues") or {},  # --drop-label-issues: what it checked
    }


def training_section(run_dir: Path, out_dir: Path | None = None) -> dict:
    """Curves per epoch with both stages and the chosen epoch marked; epochs per stage.

    Args:
        run_dir: the run folder.
        out_dir: where to write curves.png (default: ``run_dir``).
    """
    rows = read_history(run_dir / RunFiles.HISTORY)
    png = plot_history(run_dir / RunFiles.HISTORY, (out_dir or run_dir) / RunFiles.CURVES)
    stages: dict[str, dict] = {}
    for r in rows:
        s = stages.setdefault(r["stage"], {"epochs": 0, "seconds": 0.0, "first": int(r["epoch"])})
        s["epochs"] += 1
        s["seconds"] += float(r["seconds"] or 0)
    best = best_epoch(rows)
    chosen = next((r for r in rows if int(r["epoch"]) == best), None)
    return {
        "curves": png_data_uri(png) if png else None,
        "stages": stages,
        "best_epoch": best,
        "best_row": chosen,
        "epochs": len(rows),
    }


# metrics.json fields added after the first runs were written, with what an older run means by their
# absence
LATER_METRICS = {"absent_classes": [], "honesty": None, "statistics": {}, "confused_pairs": []}


def results_section(run_dir: Path, metrics: dict) -> dict:
    """Summary numbers with intervals, per-class table, confusion matrix, most-confused pairs.

    Args:
        run_dir: the run folder (or an evaluation folder) to write confusion_matrix.png into.
        metrics: the contents of metrics.json.
    """
    png = figures.plot_confusion_matrix(
        metrics["confusion_matrix"], metrics["classes"], run_dir / "confusion_matrix.png"
    )
    metrics = {
        **LATER_METRICS,
        **metrics,
    }  # a run written before a field existed still gets its report
    return {
        "metrics": metrics,
        "confusion": png_data_uri(png),
        "pairs": metrics["confused_pairs"],
        "extra": extra_blocks(metrics),
    }


def mistakes_section(table: PredictionTable, image_size: int) -> dict:
    """Misclassified images, most confident first, with true label, predicted label and confidence.

    Args:
        table: predictions.csv of the evaluated images.
        image_size: the run's input size (thumbnails are decoded as the model saw them).
    """
    wrong = np.flatnonzero(table.predicted != table.labels)
    conf = table.probs.max(axis=1) if len(table.probs) else np.zeros(0)
    order = wrong[np.argsort(-conf[wrong], kind="stable")]
    items = []
    for i in order[:MAX_MISTAKES]:
        try:
            thumb = array_data_uri(load_image(table.paths[i], min(image_size, THUMBNAIL)))
        except Exception:  # noqa: BLE001  (a file gone since: show the row without its picture)
            thumb = None
        items.append(
            {
                "path": table.paths[i],
                "name": Path(table.paths[i]).name,
                "true": table.classes[table.labels[i]],
                "predicted": table.classes[table.predicted[i]],
                "confidence": float(conf[i]),
                "thumb": thumb,
            }
        )
    return {"gallery": items, "total": int(len(wrong)), "n": len(table.paths), "cap": MAX_MISTAKES}


def calibration_section(run_dir: Path, out_dir: Path | None = None) -> dict | None:
    """Temperature, ECE before/after and the reliability diagram on the test split.

    Args:
        run_dir: the run folder (holds calibration.json).
        out_dir: where to write reliability.png (default: ``run_dir``).
    """
    path = run_dir / RunFiles.CALIBRATION
    if not path.is_file():
        return None
    cal = read_json(path)
    split = "test" if cal.get("n_test") else "val"
    png = figures.plot_reliability(
        cal[f"{split}_reliability_before"],
        cal[f"{split}_reliability_after"],
        (cal[f"{split}_ece_before"], cal[f"{split}_ece_after"]),
        (out_dir or run_dir) / "reliability.png",
    )
    return {"cal": cal, "split": split, "figure": png_data_uri(png)}


def reproducibility_section(run_dir: Path) -> dict:
    """Resolved config, seed, split.csv hash, library versions, wall time per stage, command line.

    Args:
        run_dir: the run folder.
    """
    timings = (
        read_json(run_dir / RunFiles.TIMINGS) if (run_dir / RunFiles.TIMINGS).is_file() else {}
    )
    versions = (
        read_json(run_dir / RunFiles.VERSIONS) if (run_dir / RunFiles.VERSIONS).is_file() else {}
    )
    return {
        "config": (run_dir / RunFiles.CONFIG).read_text(encoding="utf-8"),
        "split_sha256": hashlib.sha256((run_dir / RunFiles.SPLIT).read_bytes()).hexdigest(),
        "versions": versions,
        "command": timings.get("command"),
        "stages": timings.get("stages", {}),
    }
