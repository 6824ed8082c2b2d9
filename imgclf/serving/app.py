"""``imgclf serve``: a web page and a JSON API over a run, a thin FastAPI layer on the prediction
core.

- ``GET /``: a page to drop or pick images and see the top classes with confidence bars;
- ``POST /predict``: multipart field ``file`` (repeat it for several images) → predictions;
- ``POST /explain``: one image in field ``file`` → its prediction and the top class's Grad-CAM
  overlay as a base64 PNG (the page shows it next to the confidence bars);
- ``GET /health``, ``GET /model``; ``GET /docs`` is the OpenAPI page, kept true by response models.

The model is loaded once at start-up. Uploads are checked before decoding (size, format, pixel
count)
and every refusal is a 4xx with ``{"detail": "..."}``. Concurrent requests share forward passes
(:class:`imgclf.serving.batching.Batcher`).
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from imgclf.config import PREDICT_ENGINE
from imgclf.serving.batching import Batcher, bucket_sizes, padded
from imgclf.serving.predictor import Run
from imgclf.serving.uploads import UploadError, check_and_decode

__all__ = ["ServeConfig", "create_app"]


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


class TopK(BaseModel):
    label: str
    probability: float


class ImagePrediction(BaseModel):
    filename: str
    label: str
    confidence: float
    top_k: list[TopK]


class PredictResponse(BaseModel):
    predictions: list[ImagePrediction]


class ExplainResponse(BaseModel):
    filename: str
    label: str
    confidence: float
    overlay_png: str = Field(
        description="base64 PNG: the top class's Grad-CAM heatmap over the image (red: most "
        "evidence)"
    )


class Health(BaseModel):
    status: str
    batches: int
    images: int


class ModelInfo(BaseModel):
    run: str
    model: str
    classes: list[str]
    image_size: int
    temperature: float
    metrics: dict[str, Any] | None
    version: str
    engine: str


class ErrorResponse(BaseModel):
    detail: str


ERRORS = {code: {"model": ErrorResponse} for code in (400, 413, 415, 422)}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


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

        await asyncio.to_thread(
            lambda: run.engine
        )  # auto: the TFLite copy, converted once and cached
        for size in bucket_sizes(cfg.max_batch):  # load the model and trace every batch shape once
            await asyncio.to_thread(
                run.predict_arrays, np.zeros((size, run.image_size, run.image_size, 3), np.uint8)
            )
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title=f"imgclf: {run.path.name}", version=__version__, lifespan=lifespan)
    _add_guards(app, cfg)
    _add_routes(app, run, cfg, batcher, __version__)
    return app


def _add_guards(app: FastAPI, cfg: ServeConfig) -> None:
    """A body-size check before the body is read, and validation errors as one clear message."""
    max_bytes = int(cfg.max_upload_mb * 2**20)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_bytes * cfg.max_files + 2**16:
            return _error(
                413,
                f"request body is {int(length) / 2**20:.1f} MB; the limit is "
                f"{cfg.max_upload_mb:g} MB per image, {cfg.max_files} images",
            )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        missing = [e for e in exc.errors() if e.get("type") == "missing"]
        if missing:
            return _error(
                422,
                "send the image(s) as multipart/form-data field 'file' (repeat it for "
                "several images)",
            )
        first = exc.errors()[0] if exc.errors() else {}
        return _error(422, f"invalid request: {first.get('msg', 'unreadable body')}")


def _add_routes(
    app: FastAPI, run: Run, cfg: ServeConfig, batcher: Batcher, __version__: str
) -> None:
    temperature = run.temperature
    max_bytes = int(cfg.max_upload_mb * 2**20)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request):
        from imgclf.serving.page import render_page

        return HTMLResponse(render_page(run, cfg, __version__))

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        return Health(status="ok", batches=batcher.batches, images=batcher.images)

    @app.get("/model", response_model=ModelInfo)
    async def model_info() -> ModelInfo:
        metrics = run.metrics
        return ModelInfo(
            run=run.path.name,
            model=str(run.config.model),
            classes=run.classes,
            image_size=run.image_size,
            temperature=temperature,
            metrics=metrics.to_dict() if metrics else None,
            version=__version__,
            engine=run.engine.name,
        )

    async def decoded(upload: UploadFile):
        """The upload's pixels at the run's size, or the 4xx response refusing it."""
        data = await upload.read(max_bytes + 1)
        try:
            return await asyncio.to_thread(
                check_and_decode,
                upload.filename or "upload",
                data,
                run.image_size,
                max_bytes,
                int(cfg.max_megapixels * 1e6),
            )
        except UploadError as exc:
            return _error(exc.status, exc.message)

    @app.post("/predict", response_model=PredictResponse, responses=ERRORS)
    async def predict(
        file: Annotated[
            list[UploadFile], File(description="image file(s); repeat the field for several")
        ],
    ):
        import numpy as np

        if len(file) > cfg.max_files:
            return _error(413, f"{len(file)} images in one request; the limit is {cfg.max_files}")
        pixels = []
        for upload in file:
            pixels.append(await decoded(upload))
            if isinstance(pixels[-1], JSONResponse):
                return pixels[-1]
        probs = await batcher.submit(np.stack(pixels))
        out = [
            run.to_prediction(upload.filename or "upload", p, cfg.top_k)
            for upload, p in zip(file, probs, strict=False)
        ]
        return PredictResponse(
            predictions=[
                ImagePrediction(
                    filename=p.path,
                    label=p.label,
                    confidence=p.confidence,
                    top_k=[TopK(label=lbl, probability=q) for lbl, q in p.top_k],
                )
                for p in out
            ]
        )

    @app.post("/explain", response_model=ExplainResponse, responses=ERRORS)
    async def explain(file: Annotated[UploadFile, File(description="one image file")]):
        import base64

        from imgclf.serving.overlay import overlay_png

        pixels = await decoded(file)
        if isinstance(pixels, JSONResponse):
            return pixels
        (probs,) = await batcher.submit(pixels[None])
        p = run.to_prediction(file.filename or "upload", probs, 1)
        png = await asyncio.to_thread(overlay_png, run.model, pixels, int(probs.argmax()))
        return ExplainResponse(
            filename=p.path,
            label=p.label,
            confidence=p.confidence,
            overlay_png=base64.b64encode(png).decode("ascii"),
        )


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
    print(
        f"serving {run.path} on http://{cfg.host}:{cfg.port}/ (API docs: /docs); Ctrl-C stops",
        flush=True,
    )
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
