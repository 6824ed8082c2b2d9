"""The report's "Inside the network" section: the model summary, feature maps of a few convolutional
layers for one test image, and Grad-CAM over test images the model got right and wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imgclf.data.decode import load_image
from imgclf.evaluation.predictions import PredictionTable
from imgclf.reporting.explain import (
    CAM_METHOD,
    CAM_METHODS,
    cam_layer,
    feature_maps,
    grad_cam,
    model_summary,
    split_model,
)
from imgclf.reporting.style import figure, png_data_uri, save

__all__ = [
    "inside_section",
    "plot_feature_maps",
    "plot_grad_cam",
    "cam_caption",
    "CAM_IMAGES",
]

CAM_IMAGES = 4  # correct and as many wrong
CAPTION_WIDTH = 24  # characters per caption line: fits the 2-inch column at 7 pt


def plot_feature_maps(
    image: np.ndarray, maps: list[tuple[str, np.ndarray]], out_png: Path | None = None
) -> bytes:
    """The image, then a row per layer with its most active channels side by side.

    Each row's channels are drawn as one strip (each channel scaled to its own range, as ``imshow``
    would scale it alone): two axes per row instead of one per channel, which keeps the figure
    cheap.

    Args:
        image: ``(h, w, 3)`` pixels.
        maps: ``(layer name, (h, w, channels))`` from :func:`imgclf.reporting.explain.feature_maps`.
        out_png: where to write the PNG, or None.
    """
    channels = max(m.shape[-1] for _, m in maps)
    size = (1.3 * (channels + 1), 1.45 * len(maps))
    with figure(
        len(maps), 2, size=size, squeeze=False, gridspec_kw={"width_ratios": [1, channels]}
    ) as (fig, axes):
        for r, (name, m) in enumerate(maps):
            for ax in axes[r]:
                ax.axis("off")
            axes[r][0].imshow(np.clip(image, 0, 255).astype("uint8"))
            axes[r][0].set_title(name[:20], fontsize=8, loc="left")
            axes[r][1].imshow(_channel_strip(m), cmap="viridis", aspect="equal")
        fig.tight_layout()
        return save(fig, out_png)


def _channel_strip(m: np.ndarray, gap: int = 2) -> np.ndarray:
    """``(h, w, c)`` → ``(h, c·(w + gap))``: the channels side by side, each in [0, 1], NaN gaps."""
    m = np.asarray(m, np.float32)
    low, span = m.min(axis=(0, 1)), np.ptp(m, axis=(0, 1))
    scaled = (m - low) / np.where(span > 0, span, 1.0)
    padded = np.pad(scaled, ((0, 0), (0, gap), (0, 0)), constant_values=np.nan)
    return np.concatenate([padded[..., c] for c in range(m.shape[-1])], axis=1)


def cam_caption(right: bool, true: str, predicted: str, confidence: float) -> str:
    """A Grad-CAM caption with the full class names, wrapped to CAPTION_WIDTH characters a line.

    Args:
        right: whether the prediction is right.
        true: the true class name.
        predicted: the predicted class name.
        confidence: the predicted class's probability.
    """
    import textwrap

    def wrap(text: str) -> list[str]:
        return textwrap.wrap(text, CAPTION_WIDTH, break_long_words=True) or [text]

    return "\n".join(
        [*wrap(f"{'✓' if right else '✗'} true {true}"), *wrap(f"pred {predicted} {confidence:.2f}")]
    )


def plot_grad_cam(
    images: np.ndarray, cams: np.ndarray, captions: list[str], out_png: Path | None = None
) -> bytes:
    """Each image above its Grad-CAM overlay.

    Args:
        images: ``(n, h, w, 3)`` pixels.
        cams: ``(n, h, w)`` heatmaps in [0, 1].
        captions: one line per image.
        out_png: where to write the PNG, or None.
    """
    n = len(images)
    lines = max((c.count("\n") + 1 for c in captions), default=2)
    with figure(2, n, size=(2.0 * n, 4.0 + 0.14 * lines), squeeze=False) as (fig, axes):
        for i in range(n):
            for ax in axes[:, i]:
                ax.axis("off")
            pixels = np.clip(images[i], 0, 255).astype("uint8")
            axes[0][i].imshow(pixels)
            axes[0][i].set_title(captions[i], fontsize=7)
            axes[1][i].imshow(pixels)
            axes[1][i].imshow(cams[i], cmap="inferno", alpha=0.55, vmin=0, vmax=1)
        fig.tight_layout()
        return save(fig, out_png)


def _cam_picks(table: PredictionTable) -> list[int]:
    right = np.flatnonzero(table.predicted == table.labels)[:CAM_IMAGES]
    wrong = np.flatnonzero(table.predicted != table.labels)[:CAM_IMAGES]
    return [int(i) for i in (*right, *wrong)]


def inside_section(model, table: PredictionTable | None, image_size: int, run_dir: Path) -> dict:
    """Summary text, feature maps and Grad-CAM figures (written as PNGs into ``run_dir``).

    Args:
        model: the run's model.
        table: the test split's predictions (images for the figures), or None.
        image_size: the run's input size.
        run_dir: where to write feature_maps.png and grad_cam.png.
    """
    out = {
        "summary": model_summary(model),
        "feature_maps": None,
        "grad_cam": None,
        "cam_layer": None,
        "cam_method": None,
    }
    picks = _cam_picks(table) if table is not None and len(table.paths) else []
    images, kept = [], []
    for i in picks:
        try:
            images.append(load_image(table.paths[i], image_size))
            kept.append(i)
        except Exception:  # noqa: BLE001, S112  (a test image gone since training: leave it out)
            continue
    if not images:
        return out
    batch = np.stack(images).astype("float32")
    try:
        maps = feature_maps(model, batch[0])
        layer = cam_layer(split_model(model)[0], image_size)
        cams = grad_cam(model, batch, [int(table.predicted[i]) for i in kept], layer=layer)
    except ValueError:  # a model without a nested backbone (a bare .keras file): summary only
        return out
    out["cam_layer"], out["cam_method"] = layer, CAM_METHODS[CAM_METHOD]
    if maps:
        out["feature_maps"] = png_data_uri(
            plot_feature_maps(batch[0], maps, run_dir / "feature_maps.png")
        )
    captions = [
        cam_caption(
            bool(table.predicted[i] == table.labels[i]),
            table.classes[table.labels[i]],
            table.classes[table.predicted[i]],
            float(table.probs[i].max()),
        )
        for i in kept
    ]
    out["grad_cam"] = png_data_uri(plot_grad_cam(batch, cams, captions, run_dir / "grad_cam.png"))
    return out
