"""Report benchmark: what the report adds to ``imgclf train`` (seconds, and share of the run's
time).

Given a finished run (``imgclf train ../shared/datasets/sign-language-digits`` with the defaults),
it rebuilds ``report.html`` ``--repeat`` times with the run's model loaded once (the report-only
cost: figures, Grad-CAM, feature maps, thumbnails, rendering), reads the run's own ``timings.json``
(wall time per stage, including what training spent on scoring the validation split for calibration
and on the first report), and prints one line: report seconds, the run's train_seconds and the
ratio.

    .venv/bin/python bench/bench_report.py RUN [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import imgclf
    from imgclf.reporting.report import build_report

    run = imgclf.load_run(args.run)
    model = run.model
    seconds = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        build_report(run.path, model)
        seconds.append(time.perf_counter() - start)
    metrics = json.loads((run.path / "metrics.json").read_text())
    timings = (
        json.loads((run.path / "timings.json").read_text())
        if (run.path / "timings.json").is_file()
        else {}
    )
    train = metrics["train_seconds"]
    stage = timings.get("stages", {}).get("report")
    each = ", ".join(f"{s:.1f}" for s in seconds)
    alone, within = statistics.median(seconds) / train, (stage or 0) / train
    print(
        f"report alone: median {statistics.median(seconds):.1f}s of {args.repeat} ({each}); "
        f"in training (val scoring + calibration + report): {stage}s; train_seconds {train}s; "
        f"ratio {alone:.3f} (report alone), {within:.3f} (in training)"
    )


if __name__ == "__main__":
    main()
