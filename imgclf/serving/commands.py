"""The ``predict``, ``export`` and ``serve`` sub-commands: their flags and what they do
(``predict`` in :mod:`imgclf.serving.predict_command`, with its exit statuses)."""

from __future__ import annotations

import argparse

from imgclf.constants import ENGINES, EXPORT_FORMATS, EXPORT_PRECISIONS
from imgclf.serving.predict_command import (
    ENGINE_HELP,
    EXIT_FAILED,
    EXIT_OK,
    add_predict_parser,
    cmd_predict,
)

__all__ = [
    "add_predict_parser",
    "cmd_predict",
    "add_export_parser",
    "cmd_export",
    "add_serve_parser",
    "cmd_serve",
]


def add_export_parser(sub) -> None:
    """Register ``imgclf export`` on the sub-parsers ``sub``."""
    p = sub.add_parser(
        "export",
        help="export a run's model (SavedModel, TFLite, ONNX), checked against the Keras model",
    )
    p.add_argument("run", help="run folder made by `imgclf train`")
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    p.add_argument(
        "--precision",
        choices=EXPORT_PRECISIONS,
        default="float32",
        help="TFLite weights; int8 is calibrated on training images (default: float32)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="export folder (default: RUN/exports/FORMAT[_PRECISION])"
    )


def cmd_export(args: argparse.Namespace) -> int:
    """Run ``imgclf export``: 0 when the export agrees with the Keras model, 1 when it does not
    (int8 reports its agreement and exits 0: quantization is expected to cost some)."""
    from imgclf.serving.export import export_run
    from imgclf.serving.predictor import load_run

    parity = export_run(load_run(args.run), args.format, args.precision, args.out)
    print(parity.summary())
    if not parity.good and args.precision == "int8":
        print(
            "  int8 quantization changed some predictions; use float16 or float32 where "
            "that matters"
        )
        return EXIT_OK
    return EXIT_OK if parity.good else EXIT_FAILED


def add_serve_parser(sub) -> None:
    """Register ``imgclf serve`` on the sub-parsers ``sub``."""
    from imgclf.serving.app import ServeConfig

    d = ServeConfig()
    p = sub.add_parser("serve", help="a web page and a JSON API (POST /predict) for a run")
    p.add_argument("run", help="run folder made by `imgclf train`")
    p.add_argument(
        "--host",
        default=d.host,
        help=f"interface to listen on (default: {d.host}, this machine only)",
    )
    p.add_argument(
        "--port", type=int, default=d.port, metavar="N", help=f"TCP port (default: {d.port})"
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=d.max_upload_mb,
        metavar="MB",
        help=f"largest image accepted (default: {d.max_upload_mb:g})",
    )
    p.add_argument(
        "--max-megapixels",
        type=float,
        default=d.max_megapixels,
        metavar="MP",
        help=f"largest width x height accepted (default: {d.max_megapixels:g})",
    )
    p.add_argument(
        "--top-k",
        type=int,
        default=d.top_k,
        metavar="K",
        help=f"classes returned per image (default: {d.top_k})",
    )
    p.add_argument("--engine", choices=ENGINES, default=d.engine, help=ENGINE_HELP)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run ``imgclf serve`` until Ctrl-C."""
    from imgclf.errors import invalid_value
    from imgclf.serving.app import ServeConfig, serve

    if not 0 < args.port < 65536:
        raise invalid_value("port", args.port, "an integer from 1 to 65535")
    if args.max_upload_mb <= 0 or args.max_megapixels <= 0 or args.top_k < 1:
        raise invalid_value(
            "max_upload_mb/max_megapixels/top_k",
            (args.max_upload_mb, args.max_megapixels, args.top_k),
            "positive numbers",
        )
    cfg = ServeConfig(
        host=args.host,
        port=args.port,
        max_upload_mb=args.max_upload_mb,
        max_megapixels=args.max_megapixels,
        top_k=args.top_k,
        engine=args.engine,
    )
    serve(args.run, cfg)
    return EXIT_OK
