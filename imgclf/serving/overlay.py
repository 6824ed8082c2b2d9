"""The web app's Grad-CAM overlay: where the evidence for the top class lies, drawn over the image.

A thin adapter over :func:`imgclf.reporting.explain.grad_cam` (its public function only: the
variant — HiResCAM by default since issue 12 — and the layer it reads are that module's business):
the heatmap, coloured from dark blue (no evidence) through green and yellow to red (the most), is
blended over the image in proportion to its strength, so the image stays visible where the model
found nothing, and the result is a PNG.
"""

from __future__ import annotations

import io
import threading

import numpy as np

__all__ = ["OVERLAY_SIDE", "heat_colours", "overlay_png"]

OVERLAY_SIDE = 224  # the PNG's side in pixels at least (a 32 px run's map is upscaled to it)
MAX_BLEND = 0.6  # the heatmap's opacity where it is strongest

_lock = threading.Lock()  # one Grad-CAM at a time: each builds a gradient sub-model of the backbone


def heat_colours(cam: np.ndarray) -> np.ndarray:
    """A ``(h, w)`` map in [0, 1] as ``(h, w, 3)`` uint8 RGB on a blue → green → yellow → red scale.

    Args:
        cam: the heatmap, 0 = no evidence, 1 = the most.
    """
    x = np.clip(np.asarray(cam, np.float32), 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25], np.float32)  # where red, green and blue peak
    return (np.clip(1.5 - np.abs(4.0 * (x - centres)), 0.0, 1.0) * 255).astype(np.uint8)


def overlay_png(model, pixels: np.ndarray, class_index: int) -> bytes:
    """The Grad-CAM of ``class_index`` for one image, blended over it, as PNG bytes.

    Args:
        model: the run's Keras model.
        pixels: ``(size, size, 3)`` RGB pixels in [0, 255] at the run's input size.
        class_index: the class to explain (the predicted one on the web page).
    """
    from PIL import Image

    from imgclf.reporting.explain import grad_cam

    image = np.asarray(pixels, np.float32)
    with _lock:
        cam = grad_cam(model, image[None], [int(class_index)])[0]
    alpha = MAX_BLEND * np.clip(cam, 0.0, 1.0)[..., None]
    blended = (image * (1.0 - alpha) + heat_colours(cam) * alpha).clip(0, 255).astype(np.uint8)
    side = max(OVERLAY_SIDE, image.shape[0])
    out = io.BytesIO()
    Image.fromarray(blended).resize((side, side), Image.Resampling.BICUBIC).save(out, format="PNG")
    return out.getvalue()
