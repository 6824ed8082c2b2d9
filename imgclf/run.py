"""One object from training to export: :class:`Run`, what :func:`imgclf.train` and
:func:`imgclf.load_run` return.

It is the prediction core's run (:class:`imgclf.serving.predictor.Run`: ``predict``, ``evaluate``)
with what else a user does with a trained model — ``export``, ``report``, ``serve`` — each one call
to the code its command runs (``imgclf export``, ``report``, ``serve``). The model is loaded once
per :class:`Run` and shared by all of them. A front end, like ``cli.py``: it may import any part of
the package, and nothing in the package imports it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgclf.constants import PREDICT_ENGINE
from imgclf.errors import invalid_value
from imgclf.runs import RunFiles, read_json
from imgclf.serving import predictor

if TYPE_CHECKING:
    from imgclf.serving.app import ServeConfig
    from imgclf.serving.export import Parity
    from imgclf.training.trainer import TrainResult

__all__ = ["Run", "load_run", "serve_config"]


def serve_config(engine: str, asked: dict[str, Any]) -> ServeConfig:
    """``imgclf serve``'s options with those ``asked`` (None: the default), checked.

    Args:
        engine: the run's prediction engine.
        asked: ``host``, ``port``, ``top_k``, ``max_upload_mb``, ``max_megapixels`` (None: default).

    Returns:
        The :class:`~imgclf.serving.app.ServeConfig`.

    >>> serve_config("keras", {"port": 8080, "top_k": None}).port
    8080
    >>> serve_config("keras", {"port": 0})
    Traceback (most recent call last):
    imgclf.errors.InvalidValue: invalid value for `port`: received 0; expected an integer ...65535
    """
    from imgclf.serving.app import ServeConfig

    cfg = dataclasses.replace(
        ServeConfig(engine=engine), **{k: v for k, v in asked.items() if v is not None}
    )
    if not isinstance(cfg.port, int) or not 0 < cfg.port < 65536:
        raise invalid_value("port", cfg.port, "an integer from 1 to 65535")
    for name in ("top_k", "max_upload_mb", "max_megapixels"):
        if not getattr(cfg, name) > 0:
            raise invalid_value(name, getattr(cfg, name), "a positive number")
    return cfg


class Run(predictor.Run):
    """A trained run, from prediction to export: ``predict``, ``evaluate``, ``export``,
    ``report``, ``serve``.

    Args:
        path: the run folder.
        engine: how :meth:`predict` runs the model: ``auto`` (a cached, parity-checked TFLite
            copy, else Keras), ``tflite`` or ``keras``.

    Attributes:
        path: the run folder (also ``run_dir``).
        config: its resolved :class:`~imgclf.config.TrainConfig` (``config.yaml``).
        classes: its class names, in the order of the model's outputs.
        image_size: the side of the model's square input, in pixels.
        metrics: the test metrics of training (``metrics.json``).
        training: what :func:`imgclf.train` reported (``seconds`` …); None after ``load_run``.

    >>> run = Run("runs/photos")
    >>> run.classes, run.image_size, run.config.model
    (['cat', 'dog', 'fox'], 32, 'cnn')
    """

    def __init__(self, path: str | Path, engine: str = PREDICT_ENGINE, *, untrained: bool = False):
        super().__init__(path, engine, untrained=untrained)
        self.training: TrainResult | None = None

    @property
    def run_dir(self) -> Path:
        """The run folder (the same as ``path``)."""
        return self.path

    @property
    def interrupted(self) -> bool:
        """Whether Ctrl-C stopped training early (the best model so far was kept and tested): as
        :func:`imgclf.train` reported it, else as the run folder says now (a resumed run: no)."""
        if self.training is not None:
            return self.training.interrupted
        p = self.path / RunFiles.METRICS
        return bool(p.exists() and read_json(p).get("interrupted", False))

    def export(
        self, format: str, precision: str = "float32", out: str | Path | None = None
    ) -> Parity:
        """Export the model (what ``imgclf export`` does) and check it against the Keras model.

        Args:
            format: ``savedmodel``, ``tflite`` or ``onnx``.
            precision: TFLite weights: ``float32``, ``float16`` or ``int8``.
            out: the export folder; None: ``RUN/exports/FORMAT[_PRECISION]``.

        Returns:
            The :class:`~imgclf.serving.export.Parity` check: where the export is, how often it
            agrees with the Keras model (``good``), ``summary()`` in words.

        >>> parity = run.export("tflite")
        >>> parity.format, parity.good
        ('tflite float32', True)
        """
        from imgclf.serving.export import export_run

        return export_run(self, format, precision, out)

    def report(self) -> Path:
        """Build ``report.html`` (and its figures) in the run folder, as ``imgclf report RUN``.

        Returns:
            The report's path.

        >>> run.report().name
        'report.html'
        """
        from imgclf.reporting.report import build_report

        return build_report(self.path, self.model)

    def serve(
        self,
        host: str | None = None,
        port: int | None = None,
        top_k: int | None = None,
        max_upload_mb: float | None = None,
        max_megapixels: float | None = None,
    ) -> None:
        """The web page and JSON API of ``imgclf serve`` for this run, until Ctrl-C; the server
        uses this object's model. None: ``imgclf serve``'s default for each.

        Args:
            host: the interface to listen on (default: this machine only).
            port: the TCP port.
            top_k: classes returned per image.
            max_upload_mb: the largest image accepted, in MB.
            max_megapixels: the largest width x height accepted, in millions of pixels.

        >>> run.serve(port=8000)  # doctest: +SKIP
        serving runs/photos on http://127.0.0.1:8000/ (API docs: /docs); Ctrl-C stops
        """
        from imgclf.serving.app import serve

        asked = dict(host=host, port=port, top_k=top_k, max_upload_mb=max_upload_mb)
        asked["max_megapixels"] = max_megapixels
        serve(self, serve_config(self.engine_name, asked))


def load_run(path: str | Path, engine: str = PREDICT_ENGINE) -> Run:
    """Open a run folder made by ``imgclf train`` (or :func:`imgclf.train`).

    Args:
        path: the run folder.
        engine: ``auto``, ``tflite`` or ``keras``: how predictions run the model.

    Returns:
        The :class:`Run`.

    Raises:
        DataError: ``path`` is not a finished run folder.

    >>> load_run("runs/photos").config.image_size
    32
    """
    return Run(path, engine)
