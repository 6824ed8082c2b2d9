"""The routes of ``imgclf serve``: the page, ``/health``, ``/model``, ``/predict`` and ``/explain``.

``POST /predict`` answers each uploaded file on its own: a file that cannot be used gets its own
``error`` (in the words ``imgclf predict`` uses) beside the others' predictions, and the answer is
200 when at least one file was predicted. When none was, the answer is the first file's refusal
(400, 413, 415 or 422) with every file's reason in ``detail``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from imgclf.serving.batching import Batcher
from imgclf.serving.predictor import Run
from imgclf.serving.schemas import (
    ERRORS,
    ExplainResponse,
    Health,
    ImagePrediction,
    ModelInfo,
    PredictResponse,
    TopK,
    upload_body,
)
from imgclf.serving.uploads import UploadError, check_and_decode

__all__ = ["add_routes", "error_response"]


def error_response(status: int, message: str) -> JSONResponse:
    """A refusal: ``{"detail": message}`` with ``status``.

    Args:
        status: the HTTP status (4xx).
        message: one line for the user.
    """
    return JSONResponse({"detail": message}, status_code=status)


def add_routes(app: FastAPI, run: Run, cfg, batcher: Batcher, version: str) -> None:
    """Add every route of the server to ``app``.

    Args:
        app: the FastAPI app.
        run: the served run.
        cfg: the :class:`imgclf.serving.app.ServeConfig`.
        batcher: the shared forward passes.
        version: imgclf's version.
    """
    _add_info_routes(app, run, batcher, cfg, version)
    decode = _decoder(run, cfg)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=ERRORS,
        openapi_extra=upload_body("image file(s) in the field 'file'; repeat it for several"),
    )
    async def predict(
        file: Annotated[
            list[UploadFile], File(description="image file(s); repeat the field for several")
        ],
    ):
        if len(file) > cfg.max_files:
            return error_response(
                413, f"{len(file)} images in one request; the limit is {cfg.max_files}"
            )
        decoded = [await decode(upload) for upload in file]
        good = [d for d in decoded if not isinstance(d, UploadError)]
        if not good:
            detail = "; ".join(d.message for d in decoded)
            return error_response(decoded[0].status, detail)
        rows = iter(await batcher.submit(np.stack(good)))
        return PredictResponse(
            predictions=[
                _failed(d) if isinstance(d, UploadError) else _predicted(run, u, next(rows), cfg)
                for u, d in zip(file, decoded, strict=True)
            ]
        )

    @app.post(
        "/explain",
        response_model=ExplainResponse,
        responses=ERRORS,
        openapi_extra=upload_body("one image file in the field 'file'"),
    )
    async def explain(file: Annotated[UploadFile, File(description="one image file")]):
        pixels = await decode(file)
        if isinstance(pixels, UploadError):
            return error_response(pixels.status, pixels.message)
        return await _explained(run, batcher, file.filename or "upload", pixels)


def _add_info_routes(app: FastAPI, run: Run, batcher: Batcher, cfg, version: str) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request):
        from imgclf.serving.page import render_page

        return HTMLResponse(render_page(run, cfg, version))

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
            temperature=run.temperature,
            metrics=metrics.to_dict() if metrics else None,
            version=version,
            engine=run.engine.name,
        )


def _decoder(run: Run, cfg):
    """``await decode(upload)``: the upload's pixels at the run's size, or its UploadError."""
    max_bytes = int(cfg.max_upload_mb * 2**20)
    max_pixels = int(cfg.max_megapixels * 1e6)

    async def decode(upload: UploadFile) -> np.ndarray | UploadError:
        data = await upload.read(max_bytes + 1)  # a larger upload is refused without reading it
        name = upload.filename or "upload"
        args = (name, data, run.image_size, max_bytes, max_pixels, upload.size)
        try:
            return await asyncio.to_thread(check_and_decode, *args)
        except UploadError as exc:
            return exc

    return decode


def _failed(error: UploadError) -> ImagePrediction:
    return ImagePrediction(filename=error.name, error=error.reason)


def _predicted(run: Run, upload: UploadFile, probs: np.ndarray, cfg) -> ImagePrediction:
    p = run.to_prediction(upload.filename or "upload", probs, cfg.top_k)
    return ImagePrediction(
        filename=p.path,
        label=p.label,
        confidence=p.confidence,
        top_k=[TopK(label=label, probability=q) for label, q in p.top_k],
    )


async def _explained(run: Run, batcher: Batcher, name: str, pixels: np.ndarray):
    import base64

    from imgclf.serving.overlay import overlay_png

    (probs,) = await batcher.submit(pixels[None])
    p = run.to_prediction(name, probs, 1)
    png = await asyncio.to_thread(overlay_png, run.model, pixels, int(probs.argmax()))
    return ExplainResponse(
        filename=p.path,
        label=p.label,
        confidence=p.confidence,
        overlay_png=base64.b64encode(png).decode("ascii"),
    )
