"""``imgclf train``: its flags are generated from :class:`imgclf.config.TrainConfig`."""

from __future__ import annotations

import argparse
import sys

from imgclf.config import TrainConfig
from imgclf.config_files import config_fields, field_type
from imgclf.errors import ConfigError
from imgclf.runtime import process_started

__all__ = ["add_train_parser", "cmd_train"]

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


def add_train_parser(sub) -> None:
    """Add ``train`` to the sub-commands ``sub``.

    Args:
        sub: what ``ArgumentParser.add_subparsers`` returned.
    """
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


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``imgclf train``; returns the exit status (130 when interrupted).

    Args:
        args: the parsed command line.
    """
    # --time counts from the process's start: importing TensorFlow is part of the user's wait
    started = process_started()
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
            f"{result.run_dir}\taccuracy={result.metrics.accuracy:.4f}\tn={result.metrics.n}"
            f"\tinterrupted={flag}"
        )
    if not result.interrupted:
        return 0
    _say_interrupted(result)
    return EXIT_INTERRUPTED


def _say_interrupted(result) -> None:
    from imgclf.runs import RunFiles
    from imgclf.training.ensemble import MEMBERS

    run_dir = result.run_dir
    tested = f"accuracy {result.metrics.accuracy:.4f}, n={result.metrics.n}"
    if (run_dir / RunFiles.STATE).is_file():
        then = f"continue with `imgclf train --resume {run_dir}`"
    elif (run_dir / MEMBERS).is_dir():
        then = "it averages the ensemble's members trained before the Ctrl-C; it is not resumed"
    else:
        then = "it stopped before its first checkpoint, so it cannot be resumed"
    print(
        f"imgclf: interrupted: kept the best model so far ({run_dir / RunFiles.MODEL}) "
        f"and tested it ({tested}); {then}",
        file=sys.stderr,
    )
