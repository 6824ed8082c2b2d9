"""The command line: a thin front end, one sub-command per stage (their parsers and code in
:mod:`imgclf.commands`, and :mod:`imgclf.serving.commands` for predict, export and serve).

An :class:`ImgclfError` prints one line, ``imgclf: error: …``, never a traceback; a bad option
value names the flag as typed (``--val-fraction``). Exit status: 0 success; 1 a data, model or
runtime problem (DataError, ModelError, a full disk or read-only folder; ``doctor --strict``
findings); 2 a usage mistake (argparse errors, ConfigError); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import types
from collections.abc import Sequence

from imgclf.commands.doctor import add_doctor_parser, cmd_doctor
from imgclf.commands.results import add_evaluate_parser, add_report_parser, cmd_evaluate, cmd_report
from imgclf.commands.runs import add_runs_parser, cmd_runs
from imgclf.commands.tools import add_cache_parser, add_models_parser, cmd_cache, cmd_models
from imgclf.commands.train import add_train_parser, cmd_train
from imgclf.errors import ConfigError, ImgclfError, InvalidValue
from imgclf.logs import to_terminal
from imgclf.runtime import exit_now, quiet_tensorflow_logs

__all__ = ["main", "build_parser"]

EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse with imgclf's one-line error format (instead of the usage block); ``commands``
    holds each sub-command's parser."""

    commands: dict[str, argparse.ArgumentParser]

    def error(self, message: str):
        print(f"imgclf: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The ``imgclf`` parser with every sub-command."""
    parser = _Parser(
        prog="imgclf",
        description="Train, evaluate and use image classifiers from a folder of labelled images.",
    )
    from imgclf import __version__

    parser.add_argument("--version", action="version", version=f"imgclf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_train_parser(sub)
    add_evaluate_parser(sub)
    add_report_parser(sub)
    from imgclf.serving.commands import add_export_parser, add_predict_parser, add_serve_parser

    add_predict_parser(sub)
    add_export_parser(sub)
    add_serve_parser(sub)
    add_models_parser(sub)
    add_doctor_parser(sub)
    add_cache_parser(sub)
    add_runs_parser(sub)
    parser.commands = dict(sub.choices)
    return parser


def _cmd_predict(args: argparse.Namespace) -> int:
    from imgclf.serving.commands import cmd_predict

    return cmd_predict(args)


def _cmd_export(args: argparse.Namespace) -> int:
    from imgclf.serving.commands import cmd_export

    return cmd_export(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    from imgclf.serving.commands import cmd_serve

    return cmd_serve(args)


COMMANDS: dict[str, types.FunctionType] = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "report": cmd_report,
    "predict": _cmd_predict,
    "export": _cmd_export,
    "serve": _cmd_serve,
    "models": cmd_models,
    "doctor": cmd_doctor,
    "cache": cmd_cache,
    "runs": cmd_runs,
}


def typed_flag(parser: argparse.ArgumentParser, dest: str, argv: Sequence[str]) -> str | None:
    """The flag of option ``dest`` as the user typed it in ``argv`` (``--time`` or
    ``--time-budget``; an abbreviation argparse accepted counts as the flag it stands for), else
    its first long flag; None when ``parser`` has no flag for ``dest``.

    Args:
        parser: a sub-command's parser.
        dest: the option's name (an argparse ``dest``, a ``TrainConfig`` field).
        argv: the command line after ``imgclf``.
    """
    action = next((a for a in parser._actions if a.dest == dest and a.option_strings), None)
    if action is None:
        return None
    flags = [f for f in action.option_strings if f.startswith("--")] or action.option_strings
    typed = [str(t).split("=", 1)[0] for t in argv if str(t).startswith("--")]
    for token in typed:
        if token in flags:
            return token
    for token in typed:
        close = [f for f in flags if f.startswith(token)]
        if len(close) == 1:
            return close[0]
    return flags[0]


def _spelled(exc: InvalidValue, parser: argparse.ArgumentParser, argv: Sequence[str]):
    spelling = {n: flag for n in exc.names if (flag := typed_flag(parser, n, argv)) is not None}
    return exc.spelled(spelling)


def _write_error(exc: OSError) -> str:
    """The one line for a full disk or read-only folder met outside imgclf.atomic."""
    from imgclf.atomic import write_failure

    if exc.errno in (errno.EACCES, errno.EPERM):  # reading or writing: say only what happened
        return f"{exc.filename or 'a file'!s}: permission denied"
    return str(write_failure(exc.filename or "a file", exc))


def _true_advice(message: str, parser: argparse.ArgumentParser) -> str:
    """``message`` without advice to "pass --out" when this command has no ``--out``."""
    if any("--out" in a.option_strings for a in parser._actions):
        return message
    for advice in ("; pass --out to a writable folder", " or pass --out on another disk"):
        message = message.replace(advice, "")
    return message.replace("; pass --out to a folder you can write to", "")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``imgclf`` command; returns the exit status (0 success, 1 a problem, 2 a usage
    mistake, 130 interrupted; errors printed on one line).

    Args:
        argv: the arguments after ``imgclf``; None: ``sys.argv[1:]``, the ``imgclf`` program itself,
            which then ends the process as soon as the command is done
            (:func:`imgclf.runtime.exit_now`).
    """
    quiet_tensorflow_logs()  # before any command imports TensorFlow
    parser = build_parser()
    typed = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(typed)
    command = parser.commands[args.command]
    try:
        with to_terminal(info=not getattr(args, "quiet", False)):  # the library's log lines
            rc = COMMANDS[args.command](args)
        return rc if argv is not None else exit_now(rc)
    except ImgclfError as exc:
        if isinstance(exc, InvalidValue):
            exc = _spelled(exc, command, typed)
        print(f"imgclf: error: {_true_advice(str(exc), command)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_PROBLEM
    except KeyboardInterrupt:
        print("imgclf: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk or read-only folder met outside imgclf.atomic
        from imgclf.atomic import WRITE_ERRNOS

        if exc.errno not in WRITE_ERRNOS:
            raise
        print(f"imgclf: error: {_true_advice(_write_error(exc), command)}", file=sys.stderr)
        return EXIT_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
