"""``imgclf serve``: a web page and a JSON API over a run, a thin FastAPI layer on the prediction
core.

- ``GET /``: a page to drop or pick images and see the top classes with confidence bars;
- ``POST /predict``: multipart field ``file`` (repeat it for several images) → one result per file:
  its prediction, or its own error (200 when any file was predicted; see
  :mod:`imgclf.serving.routes`);
- ``POST /explain``: one image in field ``file`` → its prediction and the top class's Grad-CAM
  overlay as a base64 PNG (the page shows it next to the confidence bars);
- ``GET /health``, ``GET /model``; ``GET /docs`` is the OpenAPI page, kept true by response models
  (:mod:`imgclf.serving.schemas`).

The model is loaded once at start-up. Uploads are checked before decoding (size, the verdict every
command gives on a file, pixel count) and decoded by THE decode path
(:func:`imgclf.data.decode.decode_image`); every refusal is a 4xx with ``{"detail": "..."}``.
Concurrent requests share forward passes (:class:`imgclf.serving.batching.Batcher`).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from imgclf.constants import PREDICT_ENGINE
from imgclf.serving.batching import Batcher, bucket_sizes, padded
from imgclf.serving.predictor import Run
from imgclf.serving.routes import add_routes, error_response
from imgclf.serving.uploads import size_text

LOG = logging.getLogger(__name__)

__all__ = ["ServeConfig", "create_app", "serve"]


@dataclass
class ServeConfig:
    """Options of ``imgclf serve``.

    Args:
        host: interface to listen on (loopback by default).
        port: TCP port.
        max_upload_mb: largest image accepted, in MB.
        max_megapixels: largest width × height accepted, in millions of pixels.
        max_files: most images in one request.
        max_batch: most images per forward pass.
        top_k: classes returned per image.
        engine: ``auto``, ``tflite`` or ``keras`` (see :mod:`imgclf.engines.choose`).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: float = 8.0
    max_megapixels: float = 50.0
    max_files: int = 16
    max_batch: int = 32
    top_k: int = 5
    engine: str = PREDICT_ENGINE


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("imgclf")
    except PackageNotFoundError:
        return "unknown"


def create_app(run: Run, config: ServeConfig | None = None) -> FastAPI:
    """The web app for ``run`` (model loaded and warmed up when the app starts).

    Args:
        run: the run folder to serve.
        config: limits and options (defaults: :class:`ServeConfig`).
    """
    __version__ = _version()
    cfg = config or ServeConfig()
    batcher = Batcher(lambda x: padded(run.predict_arrays, x, cfg.max_batch), cfg.max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import numpy as np

        # auto: the TFLite copy, converted once and cached
        await asyncio.to_thread(lambda: run.engine)
        for size in bucket_sizes(cfg.max_batch):  # load the model and trace every batch shape once
            await asyncio.to_thread(
                run.predict_arrays, np.zeros((size, run.image_size, run.image_size, 3), np.uint8)
            )
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title=f"imgclf: {run.path.name}", version=__version__, lifespan=lifespan)
    _add_guards(app, cfg)
    add_routes(app, run, cfg, batcher, __version__)
    return app


def _add_guards(app: FastAPI, cfg: ServeConfig) -> None:
    """A body-size check before the body is read, and validation errors as one clear message."""
    max_bytes = int(cfg.max_upload_mb * 2**20)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_bytes * cfg.max_files + 2**16:
            return error_response(
                413,
                f"request body is {size_text(int(length))}; the limit is "
                f"{cfg.max_upload_mb:g} MB per image, {cfg.max_files} images",
            )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        missing = [e for e in exc.errors() if e.get("type") == "missing"]
        if missing:
            return error_response(
                422,
                "send the image(s) as multipart/form-data field 'file' (repeat it for "
                "several images)",
            )
        first = exc.errors()[0] if exc.errors() else {}
        return error_response(422, f"invalid request: {first.get('msg', 'unreadable body')}")


def serve(run_dir: str | Path | Run, config: ServeConfig | None = None) -> None:
    """Start the server for ``run_dir`` and block until Ctrl-C.

    Args:
        run_dir: a run folder made by ``imgclf train``.
        config: host, port and limits.
    """
    import uvicorn

    from imgclf.serving.predictor import load_run

    cfg = config or ServeConfig()
    run = run_dir if isinstance(run_dir, Run) else load_run(run_dir, cfg.engine)
    app = create_app(run, cfg)
    LOG.info(f"serving {run.path} on http://{cfg.host}:{cfg.port}/ (API docs: /docs); Ctrl-C stops")
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
