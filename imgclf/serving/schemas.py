"""What ``imgclf serve`` answers, as pydantic models: the OpenAPI schema (``/docs``) is made from
them, so it stays true. Every refusal is declared (400, 413, 415, 422) with ``{"detail": "..."}``,
and so are the image types accepted in the multipart field ``file``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "TopK",
    "ImagePrediction",
    "PredictResponse",
    "ExplainResponse",
    "Health",
    "ModelInfo",
    "ErrorResponse",
    "ERRORS",
    "IMAGE_TYPES",
    "upload_body",
]

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/bmp", "image/webp", "image/tiff")


class TopK(BaseModel):
    label: str
    probability: float


class ImagePrediction(BaseModel):
    """One uploaded file: its prediction, or (``error`` set, ``label`` and ``confidence`` null)
    why it could not be predicted."""

    filename: str
    label: str | None = None
    confidence: float | None = None
    top_k: list[TopK] = Field(default_factory=list)
    error: str | None = Field(
        None, description="why this file could not be predicted (the words `imgclf predict` uses)"
    )


class PredictResponse(BaseModel):
    predictions: list[ImagePrediction] = Field(
        description="one entry per uploaded file, in upload order"
    )


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


_WHY = {
    400: "An empty file (0 bytes).",
    413: "Too large: the request body, an image's bytes or pixels (a decompression bomb), or too "
    "many images in one request.",
    415: "Not an image imgclf reads (JPEG, PNG, GIF, BMP, WebP, TIFF).",
    422: "No multipart field 'file', an image too small, or a file that cannot be decoded.",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": why} for code, why in _WHY.items()
}


def upload_body(description: str) -> dict[str, Any]:
    """``openapi_extra`` for a route taking images in the multipart field ``file``: the accepted
    image types (any other is refused with 415).

    Args:
        description: what the request body holds.
    """
    encoding = {"file": {"contentType": ", ".join(IMAGE_TYPES)}}
    return {
        "requestBody": {
            "description": description,
            "content": {"multipart/form-data": {"encoding": encoding}},
        }
    }
