"""The command line: a thin front end, one sub-command per stage; train's flags come from
TrainConfig.

An :class:`ImgclfError` prints one line, ``imgclf: error: …``, never a traceback. Exit status: 0
success;
1 a data, model or runtime problem (DataError, ModelError, a full disk or read-only folder; ``doctor
--strict`` findings); 2 a usage mistake (argparse errors, ConfigError); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import types
from collections.abc import Sequence

from imgclf.config import TrainConfig
from imgclf.config_files import config_fields, field_type
from imgclf.errors import ConfigError, DataError, ImgclfError, invalid_value
from imgclf.runtime import exit_now, process_started, quiet_tensorflow_logs

__all__ = ["main", "build_parser"]

EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    for f in config_fields():
        flag = "--" + f.name.replace("_", "-")
        kind = field_type(f)
        default = {"image_size": "from the data", "epochs": "the model's"}.get(f.name, f.default)
        help_text = f"{f.metadata['help']} (default: {default})"
        if kind is bool:
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            metavar = f.name.upper() if kind is str else {int: "N", float: "F"}[kind]
            flags = [flag, *f.metadata.get("aliases", ())]
            parser.add_argument(
                *flags,
                dest=f.name,
                type=kind,
                default=argparse.SUPPRESS,
                metavar=metavar,
                help=help_text,
            )


class _Parser(argparse.ArgumentParser):
    """argparse with imgclf's one-line error format (instead of the usage block)."""

    def error(self, message: str):
        print(f"imgclf: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="imgclf",
        description="Train, evaluate and use image classifiers from a folder of labelled images.",
    )
    from imgclf import __version__

    parser.add_argument("--version", action="version", version=f"imgclf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train a classifier on a folder of class sub-folders")
    p.add_argument(
        "data", nargs="?", help="DATA/<class>/<images>, or DATA/train|val|test/<class>/<images>"
    )
    p.add_argument(
        "--resume", metavar="RUN", help="continue an interrupted run (its own config and split)"
    )
    p.add_argument("--config", help="YAML or JSON file of options; flags override it")
    p.add_argument("--quiet", action="store_true", help="print only the result")
    _add_config_flags(p)

    p = sub.add_parser(
        "evaluate", help="metrics of a run on its test split or on a labelled folder"
    )
    p.add_argument("run", help="run folder made by `imgclf train`")
    p.add_argument(
        "data", nargs="?", help="a separate labelled folder (class names must match the run's)"
    )
    p.add_argument("--format", choices=("table", "json"), default="table")

    p = sub.add_parser("report", help="rebuild report.html (and its figures) for an existing run")
    p.add_argument("run", help="run folder made by `imgclf train`")

    from imgclf.serving.commands import add_export_parser, add_predict_parser, add_serve_parser

    add_predict_parser(sub)
    add_export_parser(sub)
    add_serve_parser(sub)

    sub.add_parser("models", help="list the models --model accepts")

    p = sub.add_parser(
        "doctor", help="check a data folder: unusable files, duplicates, class balance, sizes"
    )
    p.add_argument("data", help="DATA/<class>/<images>, or DATA/train|val|test/<class>/<images>")
    p.add_argument("--json", metavar="FILE", help="also write the full report as JSON to FILE")
    p.add_argument(
        "--near-threshold",
        type=int,
        default=None,
        metavar="N",
        help="near-duplicate distance in pHash bits (of 64); -1 turns near-duplicate search "
        "off (default: 4)",
    )
    p.add_argument(
        "--group-by",
        metavar="GROUP_BY",
        help="regex or CSV of path,group: report groups found in several splits",
    )
    p.add_argument(
        "--run",
        metavar="RUN",
        help="a run folder: report duplicates across the splits of its split.csv",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 on unusable files, label conflicts or leakage (for CI)",
    )

    p = sub.add_parser(
        "cache", help="what the cache ($IMGCLF_CACHE, ~/.cache/imgclf) holds, or clear it"
    )
    p.add_argument("action", choices=("info", "clear"))
    from imgclf.cache import PARTS

    p.add_argument("--part", choices=PARTS, help="clear only this part (default: all of them)")
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    started = (
        process_started()
    )  # --time counts from the process's start: importing TensorFlow is part of the user's wait
    from imgclf.config_files import resolve_config
    from imgclf.training.trainer import train_run

    options = {
        k: v
        for k, v in vars(args).items()
        if k not in ("command", "data", "config", "quiet", "resume")
    }
    if args.resume:
        if args.data or options or args.config:
            raise ConfigError(
                "--resume RUN takes no DATA, --config or training options: the run's own are used"
            )
        result = train_run(
            TrainConfig(data="(resumed)"), verbose=0 if args.quiet else 1, resume_dir=args.resume
        )
    else:
        if not args.data:
            raise ConfigError("train needs DATA (a folder of class sub-folders) or --resume RUN")
        config = resolve_config(args.config, data=args.data, **options)
        result = train_run(config, verbose=0 if args.quiet else 1, started=started)
    if args.quiet:
        flag = "yes" if result.interrupted else "no"
        print(
            f"{result.run_dir}\taccuracy={result.metrics.accuracy:.4f}\tn={result.metrics.n}\tinterrupted={flag}"
        )
    if not result.interrupted:
        return 0
    from imgclf.runs import RunFiles

    run_dir = result.run_dir
    tested = f"accuracy {result.metrics.accuracy:.4f}, n={result.metrics.n}"
    then = (
        f"continue with `imgclf train --resume {run_dir}`"
        if (run_dir / RunFiles.STATE).is_file()
        else "it stopped before its first checkpoint, so it cannot be resumed"
    )
    print(
        f"imgclf: interrupted: kept the best model so far ({run_dir / RunFiles.MODEL}) "
        f"and tested it ({tested}); {then}",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from imgclf.data.scan import one_line
    from imgclf.evaluation.evaluate import evaluation_dir
    from imgclf.evaluation.metrics import format_metrics
    from imgclf.reporting.report import build_evaluation_report
    from imgclf.serving.predictor import load_run

    def show(metrics) -> None:  # before saving: a run folder that cannot be written loses nothing
        if args.format == "json":
            print(json.dumps(metrics.to_dict(), indent=2), flush=True)
            if metrics.honesty.get("differs"):
                print(metrics.honesty["message"], file=sys.stderr, flush=True)
        else:
            print(format_metrics(metrics))
            for row in metrics.skipped:
                print(f"skipped {one_line(row['path'])}: {row['reason']}")
            sys.stdout.flush()

    run = load_run(args.run)
    run.evaluate(args.data, verbose=1, on_metrics=show)
    if args.data is not None:
        out = build_evaluation_report(run.path, evaluation_dir(run.path, args.data))
        print(f"report: {out}", file=sys.stderr)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from imgclf.reporting.report import build_report
    from imgclf.serving.predictor import load_run

    run = load_run(args.run)
    print(build_report(run.path, run.model))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from imgclf.serving.commands import cmd_predict

    return cmd_predict(args)


def _cmd_export(args: argparse.Namespace) -> int:
    from imgclf.serving.commands import cmd_export

    return cmd_export(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    from imgclf.serving.commands import cmd_serve

    return cmd_serve(args)


def _cmd_doctor(args: argparse.Namespace) -> int:
    """``imgclf doctor``: scan DATA, diagnose it (with the splits of ``--run``), print it, save
    ``--json``."""
    from pathlib import Path

    from imgclf.data.doctor import DEFAULT_NEAR_THRESHOLD, diagnose
    from imgclf.data.groups import check_group_by
    from imgclf.data.scan import scan_folder
    from imgclf.data.split import read_manifest
    from imgclf.runs import RunFiles, read_json

    threshold = DEFAULT_NEAR_THRESHOLD if args.near_threshold is None else args.near_threshold
    if not -1 <= threshold <= 32:
        raise invalid_value(
            "near_threshold",
            threshold,
            "an integer from 0 to 32 (bits of 64), or -1 for no near-duplicate search",
        )
    if args.group_by is not None:
        check_group_by(args.group_by)
    scanned = scan_folder(args.data)
    splits = None
    if args.run is not None:
        run_dir = Path(args.run)
        if not (run_dir / RunFiles.CLASSES).is_file():
            raise DataError(
                f"run folder {args.run!r} has no {RunFiles.CLASSES}; expected a folder "
                "made by `imgclf train`"
            )
        classes = read_json(run_dir / RunFiles.CLASSES)
        splits = {
            i.path: i.split for i in read_manifest(run_dir / RunFiles.SPLIT, classes, scanned.root)
        }
    report = diagnose(scanned, threshold, splits=splits, group_by=args.group_by, progress=True)
    if args.json is not None:
        try:
            Path(args.json).write_text(
                json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        except OSError as exc:
            raise invalid_value(
                "json", str(args.json), f"a writable file path ({exc.strerror})"
            ) from None
    print(report.format(), flush=True)
    findings = report.gate_findings() if args.strict else []
    if findings:
        print(f"imgclf: doctor --strict: {'; '.join(findings)}", file=sys.stderr)
        return EXIT_PROBLEM
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:
    from imgclf.cache import PARTS, cache_info, clear_cache

    if args.action == "clear":
        freed = clear_cache(part=args.part)
        names = [f"{name}/" for name in ((args.part,) if args.part else PARTS)]
        cleared = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        print(f"imgclf cache: cleared {cleared}, {freed / 2**20:.1f} MB freed")
    print(cache_info().format())
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from imgclf.models.registry import list_models

    for spec in list_models():
        print(f"{spec.name:<20} {spec.description}")
    return 0


COMMANDS: dict[str, types.FunctionType] = {
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "report": _cmd_report,
    "predict": _cmd_predict,
    "export": _cmd_export,
    "serve": _cmd_serve,
    "models": _cmd_models,
    "doctor": _cmd_doctor,
    "cache": _cmd_cache,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``imgclf`` command; returns the exit status (0 success, 1 a problem, 2 a usage
    mistake,
    130 interrupted; errors printed on one line).

    Args:
        argv: the arguments after ``imgclf``; None: ``sys.argv[1:]``, the ``imgclf`` program itself,
            which then ends the process as soon as the command is done
            (:func:`imgclf.runtime.exit_now`).
    """
    quiet_tensorflow_logs()  # before any command imports TensorFlow
    args = build_parser().parse_args(argv)
    try:
        rc = COMMANDS[args.command](args)
        return rc if argv is not None else exit_now(rc)
    except ImgclfError as exc:
        print(f"imgclf: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_PROBLEM
    except KeyboardInterrupt:
        print("imgclf: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (
        OSError
    ) as exc:  # a full disk or read-only folder met outside imgclf.atomic (history.csv, a plot)
        from imgclf.atomic import WRITE_ERRNOS, write_failure

        if exc.errno not in WRITE_ERRNOS:
            raise
        if exc.errno in (errno.EACCES, errno.EPERM):  # reading or writing: say only what happened
            print(
                f"imgclf: error: {exc.filename or 'a file'!s}: permission denied", file=sys.stderr
            )
        else:
            print(f"imgclf: error: {write_failure(exc.filename or 'a file', exc)}", file=sys.stderr)
        return EXIT_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
