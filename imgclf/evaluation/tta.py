"""Test-time augmentation (TTA): average a model's class probabilities over an image and fixed
augmented views of it.

``--tta`` (predict, evaluate; ``tta=`` of the Python API) takes:

- ``none`` (or ``0``/``1``): the image alone, one forward pass;
- ``flip``: the image and its mirror image (asked for explicitly, so used whatever the run's
  training augmentation was), two passes;
- ``N`` (2–12): the first ``N`` views of :data:`VIEWS` that suit the run. The mirrored views are
  kept only when the run trained with horizontal flips (``flip`` in ``--augment``): a model that
  never saw a mirrored picture should not be asked about one (a sign, a digit, a text can change
  meaning). The others are small zooms and shifts, like the training's ``zoom``/``shift``: a
  centred crop of :data:`imgclf.constants.TTA_CROP` of the side, and the same crop at each corner
  (a shift of half the rest), each resized back to the input size.

Every view is a fixed, deterministic transform made with Keras ops (``keras.ops.flip``,
``keras.ops.image.affine_transform``), so a prediction repeats exactly; the probabilities of the
views are averaged (each row still sums to 1). Cost: one forward pass per view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imgclf.constants import TTA, TTA_CROP, TTA_MAX_VIEWS
from imgclf.data.augment import parse_augment
from imgclf.errors import invalid_value

__all__ = [
    "View",
    "VIEWS",
    "parse_tta",
    "tta_views",
    "render_view",
    "average_views",
    "add_tta_argument",
]


@dataclass(frozen=True)
class View:
    """One fixed view: a crop (top, left as fractions of the free margin: 0.5 is centred) of
    ``crop`` of the side, resized back, then mirrored when ``flip``."""

    name: str
    crop: float = 1.0
    top: float = 0.5
    left: float = 0.5
    flip: bool = False


# in the order --tta N takes them: the image, its mirror, the centred zoom (and its mirror), then
# the four corner shifts, then their mirrors
VIEWS: tuple[View, ...] = (
    View("image"),
    View("flip", flip=True),
    View("zoom", TTA_CROP),
    View("zoom+flip", TTA_CROP, flip=True),
    View("top-left", TTA_CROP, 0.0, 0.0),
    View("bottom-right", TTA_CROP, 1.0, 1.0),
    View("top-right", TTA_CROP, 0.0, 1.0),
    View("bottom-left", TTA_CROP, 1.0, 0.0),
    View("top-left+flip", TTA_CROP, 0.0, 0.0, True),
    View("bottom-right+flip", TTA_CROP, 1.0, 1.0, True),
    View("top-right+flip", TTA_CROP, 0.0, 1.0, True),
    View("bottom-left+flip", TTA_CROP, 1.0, 0.0, True),
)
assert len(VIEWS) == TTA_MAX_VIEWS

ALLOWED = f"'none', 'flip' or a number of views from 1 to {TTA_MAX_VIEWS}"


def parse_tta(spec: object) -> str | int:
    """``"flip"``, or the number of views (1: no TTA); a :class:`ConfigError` naming ``tta``
    otherwise.

    Args:
        spec: ``None``/``False``/``"none"`` (no TTA), ``True``/``"flip"``, or a number of views
            (int, or text such as ``"4"``).
    """
    if spec is None or spec is False:
        return 1
    if spec is True:
        return "flip"
    text = str(spec).strip().lower()
    if text in ("", "none", "off", "false"):
        return 1
    if text == "flip":
        return "flip"
    if not text.isdigit():
        raise invalid_value("tta", spec, ALLOWED)
    n = int(text)
    if not 0 <= n <= TTA_MAX_VIEWS:
        raise invalid_value("tta", spec, ALLOWED)
    return max(n, 1)


def tta_views(spec: object, augment: str | None = "flip") -> tuple[View, ...]:
    """The views ``spec`` asks for, for a run trained with the ``--augment`` spec ``augment``.

    Args:
        spec: as for :func:`parse_tta`; a tuple of :class:`View` is returned as it is.
        augment: the run's training augmentation: mirrored views join ``N`` only when it has
            ``flip``. ``None``: unknown, taken as flipping.
    """
    if isinstance(spec, tuple) and all(isinstance(v, View) for v in spec):
        return spec
    n = parse_tta(spec)
    if n == "flip":
        return VIEWS[:2]
    flips = augment is None or "flip" in parse_augment(augment)
    usable = tuple(v for v in VIEWS if flips or not v.flip)
    if n > len(usable):
        raise invalid_value(
            "tta",
            spec,
            f"'none', 'flip' or a number of views from 1 to {len(usable)} (this run trained "
            "without horizontal flips, so no mirrored views)",
        )
    return usable[:n]


def render_view(x, view: View):
    """The ``(n, size, size, 3)`` batch ``x`` as ``view`` sees it (float32, same size): the crop by
    Keras' ``affine_transform`` (bilinear, sub-pixel exact: a centred crop is centred at any size),
    the mirror by ``keras.ops.flip``."""
    import keras

    x = keras.ops.convert_to_tensor(x, "float32")
    if view.crop < 1.0:
        height, width = int(x.shape[1]), int(x.shape[2])
        c = view.crop  # output pixel (col, row) reads input (c*col + dx, c*row + dy)
        dx, dy = view.left * (1 - c) * (width - 1), view.top * (1 - c) * (height - 1)
        transform = keras.ops.convert_to_tensor([[c, 0.0, dx, 0.0, c, dy, 0.0, 0.0]], "float32")
        transform = keras.ops.repeat(transform, keras.ops.shape(x)[0], axis=0)
        x = keras.ops.image.affine_transform(x, transform, interpolation="bilinear")
    return keras.ops.flip(x, axis=2) if view.flip else x


def average_views(engine, x, views: tuple[View, ...]) -> np.ndarray:
    """Class probabilities of ``engine`` averaged over ``views`` of the batch ``x``: one forward
    pass per view.

    Args:
        engine: a callable from a batch of pixels to ``(n, num_classes)`` probabilities.
        x: the batch, ``(n, size, size, 3)`` pixels in [0, 255].
        views: the views (:func:`tta_views`); one view that is the image itself is a plain pass.
    """
    if views == VIEWS[:1]:
        return np.asarray(engine(x))
    return np.mean([np.asarray(engine(render_view(x, v))) for v in views], axis=0)


def add_tta_argument(parser) -> None:
    """``--tta [flip|N]`` of ``imgclf predict`` and ``imgclf evaluate`` (alone: ``flip``).

    Args:
        parser: the sub-command's ``argparse`` parser.
    """
    parser.add_argument(
        "--tta",
        nargs="?",
        const="flip",
        default=TTA,
        metavar="flip|N",
        help="test-time augmentation: average the probabilities over each image and its mirror "
        f"image ('flip', the default of a bare --tta) or N views (2-{TTA_MAX_VIEWS}: mirror if the "
        "run trained with flips, then small zooms and shifts); N views cost N forward passes",
    )
