"""The ``predict`` sub-command: its flags and what it does.

``imgclf predict`` exit status: 0 every input was predicted (without ``--strict``: at least one was,
and each failed file has its own error row); 1 no input could be predicted, or ``--strict`` and at
least one failed, or a data/model problem; 2 a usage mistake; 130 interrupted (Ctrl-C), with every
row finished so far kept in ``--output``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from imgclf.constants import (
    AUTO_CONVERT_MIN_IMAGES,
    ENGINES,
    PARQUET_SHARD_ROWS,
    PREDICT_ENGINE,
    PREDICT_ON,
)
from imgclf.errors import ConfigError, DataError
from imgclf.evaluation.tta import add_tta_argument

__all__ = ["add_predict_parser", "cmd_predict", "ENGINE_HELP", "EXIT_OK", "EXIT_FAILED"]

EXIT_OK, EXIT_FAILED = 0, 1
ENGINE_HELP = (
    "how to run the model: auto = a TFLite copy made once (for "
    f"{AUTO_CONVERT_MIN_IMAGES}+ images) and checked "
    "against Keras on the run's test images (Keras if it disagrees), tflite, or keras "
    f"(default: {PREDICT_ENGINE})"
)


def add_predict_parser(sub) -> None:
    """Register ``imgclf predict`` on the sub-parsers ``sub``.

    Args:
        sub: the object returned by ``ArgumentParser.add_subparsers``.
    """
    p = sub.add_parser("predict", help="predict the class of images")
    p.add_argument("run", help="run folder made by `imgclf train`")
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="image files, folders (recursive), globs, or @list.txt (one path a line)",
    )
    p.add_argument(
        "--from-file", metavar="LIST", help="a text file listing image paths, one a line"
    )
    _add_output_flags(p)
    _add_decision_flags(p)
    p.add_argument(
        "--batch-size",
        type=int,
        default=32,
        metavar="N",
        help="images per forward pass (default: 32)",
    )
    p.add_argument("--engine", choices=ENGINES, default=PREDICT_ENGINE, help=ENGINE_HELP)
    _add_cluster_flags(p)
    p.add_argument(
        "--strict", action="store_true", help="exit 1 if any input could not be predicted"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary line")


def _add_cluster_flags(p: argparse.ArgumentParser) -> None:
    """Where the model runs: this process, or Ray Data actors on a cluster."""
    p.add_argument(
        "--on",
        choices=PREDICT_ON,
        default=PREDICT_ON[0],
        help="local: in this process; ray: as Ray Data actors, one per CPU, each loading the "
        "model once (pip install 'imgclf[ray]'; default: local)",
    )
    p.add_argument(
        "--address",
        metavar="ADDR",
        help="with --on ray: join a running Ray cluster (auto, or ray://HOST:10001) instead of "
        "starting one on this machine",
    )


def _add_output_flags(p: argparse.ArgumentParser) -> None:
    """Where the rows go, and in which format."""
    p.add_argument(
        "--top-k", type=int, default=3, metavar="K", help="classes to list per image (default: 3)"
    )
    p.add_argument(
        "--format",
        choices=("table", "csv", "json", "jsonl", "parquet"),
        default=None,
        help="output format (default: table, or from --output's extension); parquet: files of "
        f"{PARQUET_SHARD_ROWS:,} rows in the folder --output",
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write CSV/JSON/JSONL to FILE as it goes (flushed per batch); a folder for parquet",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in --output and skip their paths",
    )


def _add_decision_flags(p: argparse.ArgumentParser) -> None:
    """How probabilities become a label."""
    p.add_argument(
        "--min-confidence",
        type=float,
        metavar="P",
        help="label an image 'unsure' when its top probability is below P",
    )
    p.add_argument(
        "--threshold",
        type=float,
        metavar="P",
        help="two-class runs: predict the second class when its probability >= P (default 0.5)",
    )
    add_tta_argument(p)  # --tta [flip|N]: imgclf.evaluation.tta


def cmd_predict(args: argparse.Namespace) -> int:
    """Run ``imgclf predict``; returns the exit status (see the module docstring).

    Args:
        args: the parsed arguments of :func:`add_predict_parser`.

    Raises:
        DataError: no paths were given or found, or ``--resume`` came without ``--output``.
        ConfigError: ``--address`` without ``--on ray``, or ``--on ray`` without Ray installed.
    """
    from imgclf.serving.inputs import expand_paths
    from imgclf.serving.predictor import load_run

    if not args.paths and not args.from_file:
        raise DataError(
            "predict needs at least one PATH (a file, folder, glob or @list.txt) or --from-file"
        )
    _check_cluster_flags(args)
    run = load_run(args.run, args.engine)
    files = expand_paths(args.paths, args.from_file)
    if not files:
        raise DataError(f"no image files found in {', '.join(args.paths or [args.from_file])}")
    if args.resume and not args.output:
        raise DataError("--resume continues an --output FILE; pass --output too")
    writer, done = _open_writer(args)
    todo = [f for f in files if f not in done]
    ok, failed = _predict_into(run, todo, writer, args)
    if not args.quiet:
        where = f" into {args.output}" if args.output else ""
        skipped = f", {len(files) - len(todo)} already done" if done else ""
        print(f"predicted {ok} images{where}, {failed} failed{skipped}", file=sys.stderr)
    if todo and ok == 0:
        return EXIT_FAILED
    return EXIT_FAILED if args.strict and failed else EXIT_OK


def _check_cluster_flags(args: argparse.Namespace) -> None:
    """``--address`` needs ``--on ray``; ``--on ray`` needs Ray (said before any work starts)."""
    if args.address and args.on != "ray":
        raise ConfigError(f"--address {args.address!r} joins a Ray cluster; pass --on ray too")
    if args.on == "ray":
        from imgclf.serving.ray_predict import import_ray

        import_ray()


def _open_writer(args: argparse.Namespace) -> tuple[object | None, set[str]]:
    """The writer of ``--output`` (None: a table printed at the end), and the paths it already
    holds (``--resume``)."""
    from imgclf.serving.output import format_of, open_output

    if args.format == "parquet":
        from imgclf.serving.parquet_output import open_parquet

        if not args.output or args.output == "-":
            raise DataError("--format parquet writes a folder of files; pass --output DIR")
        return open_parquet(args.output, args.resume)
    fmt = format_of(args.output, args.format) if args.output else (args.format or "table")
    return (None, set()) if fmt == "table" else open_output(args.output or "-", fmt, args.resume)


def _row_batches(run, todo: list[str], args: argparse.Namespace) -> Iterator[list[dict]]:
    """The rows of ``todo`` (``Prediction.to_dict()``), one batch at a time, in input order: from
    this process, or from Ray Data actors (``--on ray``)."""
    options = dict(
        top_k=args.top_k,
        batch_size=args.batch_size,
        min_confidence=args.min_confidence,
        threshold=args.threshold,
        tta=args.tta,
    )
    if args.on == "ray":
        from imgclf.serving.ray_predict import predict_rows_on_ray

        yield from predict_rows_on_ray(run, todo, options, args.address)
        return
    for chunk in run.iter_predict(todo, **options):
        yield [p.to_dict() for p in chunk]


def _predict_into(run, todo: list[str], writer, args: argparse.Namespace) -> tuple[int, int]:
    """Predict ``todo``, writing each batch's rows as it comes (or a table at the end, when
    ``writer`` is None); returns (files predicted, files failed)."""
    from imgclf.progress import progress
    from imgclf.serving.output import format_table

    if todo:  # a first TFLite conversion says so before the progress bar starts
        run.engine_for_job(len(todo))
    ok = failed = 0
    table: list[dict] = []
    rows_of = _row_batches(run, todo, args)
    try:
        with progress("predict", len(todo), enabled=not args.quiet) as advance:
            for rows in rows_of:
                writer.write(rows) if writer is not None else table.extend(rows)
                ok += sum(r["error"] is None for r in rows)
                failed += sum(r["error"] is not None for r in rows)
                advance(len(rows))
    finally:
        rows_of.close()  # a Ray cluster this command started is shut down
        if writer is not None:
            writer.close()
            if writer.stream not in (None, sys.stdout):
                writer.stream.close()
    if writer is None:
        print(format_table(table))
    return ok, failed
