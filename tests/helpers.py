"""Test utilities: image writers, dataset builders and run-folder readers, shared by the test files.

Import them by name (``from helpers import make_dataset``); fixtures live in ``conftest.py``.
Nothing here reads the network or shared data; every image is drawn from a seeded numpy RNG, so a
failing test fails the same way on every machine.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

# One clearly different background colour per class (by position in the ``classes`` dict).
PALETTE = [
    (220, 40, 40),  # red
    (40, 60, 220),  # blue
    (40, 190, 60),  # green
    (230, 200, 30),  # yellow
    (170, 60, 200),  # purple
    (30, 200, 200),  # cyan
]


def synthetic_image(class_index: int, rng: np.random.Generator, size=(48, 40)) -> Image.Image:
    """A learnable picture of class ``class_index``: its colour, a class-dependent shape, noise."""
    w, h = size
    base = np.array(PALETTE[class_index % len(PALETTE)], np.float64)
    arr = np.zeros((h, w, 3)) + base
    # a light shape whose kind depends on the class: square for even classes, horizontal bar for odd
    cy, cx = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 4, 3 * w // 4)
    r = max(3, min(w, h) // 6)
    if class_index % 2 == 0:
        arr[max(0, cy - r) : cy + r, max(0, cx - r) : cx + r] = 245
    else:
        arr[max(0, cy - r // 2) : cy + r // 2, :] = 245
    arr += rng.normal(0, 12, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def save_image(im: Image.Image, path: Path, fmt: str = "png") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("jpg", "jpeg"):
        im.convert("RGB").save(path, "JPEG", quality=90)
    else:
        im.save(path)
    return path


def make_dataset(
    root: str | Path,
    classes: dict[str, int] | None = None,
    size: tuple[int, int] = (48, 40),
    fmt: str = "png",
    seed: int = 0,
) -> Path:
    """Write ``root/<class>/<class>_NNN.<fmt>`` images; ``classes`` maps class name -> image
    count."""
    root = Path(root)
    classes = {"cat": 8, "dog": 8} if classes is None else classes
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for k, (name, n) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            save_image(synthetic_image(k, rng, size), folder / f"{name}_{i:03d}.{fmt}", fmt)
    return root


def make_distinct_dataset(
    root: str | Path, classes: dict[str, int], fmt: str = "jpg", seed: int = 0
) -> Path:
    """:func:`make_dataset` with a smooth random light field over each picture (±20 grey levels):
    the class stays in the colour and shape, but no two pictures are near duplicates by the
    doctor's pHash (plain synthetic pictures with the shape in the same place are: same layout,
    noise apart)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for k, (name, n) in enumerate(classes.items()):
        for i in range(n):
            pixels = np.asarray(synthetic_image(k, rng), np.float64)
            h, w = pixels.shape[:2]
            coarse = Image.fromarray(rng.normal(0, 1, (6, 6)).astype(np.float32), "F")
            light = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), np.float64)
            pixels += (light / (light.std() + 1e-9) * 20)[..., None]
            im = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
            im = im.filter(ImageFilter.GaussianBlur(1.5))  # like a photo: resizing keeps its pHash
            save_image(im, root / name / f"{name}_{i:03d}.{fmt}", fmt)
    return root


def jpeg_bytes(seed: int = 0, size=(64, 64)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=90
    )
    return buf.getvalue()


def write_truncated_jpeg(path: Path, seed: int = 0) -> Path:
    """The first half of a valid JPEG: its header reads fine, its pixels do not."""
    data = jpeg_bytes(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def write_bad_files(folder: Path) -> dict[str, Path]:
    """Files a scan must skip (or a decoder must reject), keyed by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "empty": folder / "empty.jpg",
        "text_as_png": folder / "text.png",
        "truncated": folder / "truncated.jpg",
        "notes": folder / "notes.txt",
    }
    files["empty"].write_bytes(b"")
    files["text_as_png"].write_text("this is not a picture\n")
    write_truncated_jpeg(files["truncated"])
    files["notes"].write_text("labelled by hand\n")
    return files


def orientation_jpeg(path: Path, orientation: int, size=(48, 40)) -> Path:
    """Stored pixels: left half red, right half blue; EXIF says how a viewer must rotate them."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = (255, 0, 0)
    arr[:, w // 2 :] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, "JPEG", quality=95, exif=exif)
    return path


def write_mixed_images(folder: Path, seed: int = 0) -> dict[str, Path]:
    """One valid image per format / colour mode imgclf accepts, keyed by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rgb = synthetic_image(0, rng)
    out: dict[str, Path] = {}

    out["jpeg"] = save_image(rgb, folder / "photo.jpg", "jpg")
    out["png_gray_L"] = folder / "gray.png"
    rgb.convert("L").save(out["png_gray_L"])

    pal = Image.fromarray(np.tile(np.arange(40, dtype=np.uint8) % 4, (40, 1)), "P")
    pal.putpalette([255, 0, 0, 0, 0, 255, 0, 255, 0, 255, 255, 0] + [0] * (768 - 12))
    out["png_palette_P_transparent"] = folder / "palette.png"
    pal.save(out["png_palette_P_transparent"], transparency=0)

    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 24:, 3] = 255  # left half transparent
    out["png_RGBA"] = folder / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(out["png_RGBA"])

    sixteen = np.linspace(0, 65535, 48 * 40).reshape(40, 48).astype(np.uint16)
    out["png_16bit_I16"] = folder / "sixteen.png"
    Image.fromarray(sixteen).save(out["png_16bit_I16"])  # mode I;16

    out["bmp"] = folder / "bitmap.bmp"
    rgb.save(out["bmp"])

    frames = [Image.new("RGB", (48, 40), (255, 0, 0)), Image.new("RGB", (48, 40), (0, 0, 255))]
    out["gif_animated"] = folder / "anim.gif"
    frames[0].save(
        out["gif_animated"], save_all=True, append_images=frames[1:], duration=100, loop=0
    )

    out["webp"] = folder / "picture.webp"
    rgb.save(out["webp"], "WEBP", quality=90)

    out["jpeg_exif_orientation_6"] = orientation_jpeg(folder / "rotated.jpg", 6)

    out["tiff"] = folder / "scan.tif"
    rgb.save(out["tiff"])
    return out


def history_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's history.csv."""
    from imgclf.runs import RunFiles

    with open(Path(run_dir) / RunFiles.HISTORY, newline="") as fh:
        return list(csv.DictReader(fh))


def manifest_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's split.csv (path, label, split)."""
    from imgclf.runs import RunFiles

    with open(Path(run_dir) / RunFiles.SPLIT, newline="") as fh:
        return list(csv.DictReader(fh))


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> digest), hidden files included."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def write_png_with_header_size(path: Path, width: int, height: int) -> Path:
    """A tiny valid PNG whose IHDR claims ``width`` x ``height`` (a decompression bomb's header)."""
    import struct
    import zlib

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def write_every_bad_kind(folder: Path, seed: int = 0) -> dict[str, Path]:
    """One file per kind the doctor reports, keyed by kind. ``lying_extension`` is usable (a
    warning)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = write_bad_files(folder)  # empty, text_as_png, truncated, notes
    rng = np.random.default_rng(seed)
    files["lying_extension"] = folder / "really_a_jpeg.png"
    synthetic_image(0, rng).save(files["lying_extension"], "JPEG", quality=90)
    files["unsupported"] = folder / "icon.png"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(files["unsupported"], "ICO")
    files["too_small"] = folder / "sliver.png"
    Image.new("RGB", (4, 30), (5, 6, 7)).save(files["too_small"])
    files["bomb"] = write_png_with_header_size(folder / "bomb.png", 30_000, 30_000)
    return files


def plant_copy(src: Path, dst: Path, kind: str = "exact") -> Path:
    """A duplicate of ``src`` at ``dst``: the same bytes (``exact``) or resized and re-encoded
    (``near``)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if kind == "exact":
        dst.write_bytes(src.read_bytes())
    else:
        with Image.open(src) as im:
            im.convert("RGB").resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC).save(
                dst, "JPEG", quality=80
            )
    return dst


def make_textured_dataset(
    root: str | Path, classes: dict[str, int], size=(48, 40), seed: int = 0
) -> Path:
    """Like :func:`make_dataset` (JPEGs), but every image is a different smooth random texture
    tinted by
    its class, so no two are perceptual near-duplicates unless a test plants one."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for k, (name, n) in enumerate(classes.items()):
        for i in range(n):
            coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
            im = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
            tint = Image.new("RGB", size, PALETTE[k % len(PALETTE)])
            save_image(Image.blend(im, tint, 0.4), root / name / f"{name}_{i:03d}.jpg", "jpg")
    return root


def train_tiny_run(
    base: Path, classes: dict[str, int], name: str, seed: int = 7, augment: str = "none"
) -> Path:
    """Train a tiny cnn run (32 px, 2 epochs) on a generated folder under ``base``; its run
    folder."""
    import imgclf

    data = make_dataset(base / f"{name}_data", classes, fmt="jpg", seed=seed)
    result = imgclf.train(
        data,
        model="cnn",
        image_size=32,
        epochs=2,
        batch_size=8,
        augment=augment,
        out=str(base / "runs"),
        name=name,
        verbose=0,
        # without precise BatchNorm statistics: with them the 2-epoch cnn fits these shapes
        # perfectly and its
        # softmax saturates at exactly 1.0 / 0.0 in float32 (measured: confidence 1.0 on every
        # image, 0.52-0.56
        # without), and the tests of --min-confidence and --threshold need probabilities strictly
        # between
        precise_bn=0,
    )
    return Path(result.run_dir)


def save_tiny_backbone(path: Path) -> Path:
    """A small conv backbone (4 × Conv/BatchNorm/ReLU, 24 channels) saved as ``.keras``: given as
    ``model=path`` it trains through the whole pretrained recipe (cached activations, head stage,
    cut, fine-tuning with BatchNorm frozen, checkpoints, resume) at a fraction of
    EfficientNet-Lite0's graph. The tests of that recipe's *mechanics* use it; those of Lite0 itself
    (its cut, what fine-tuning changes in it, the config's recipe, Grad-CAM) and the integration
    test keep Lite0. Seeded
    weights."""
    import keras

    inputs = keras.Input((None, None, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inputs)
    for i, width in enumerate((8, 16, 16, 24)):
        init = keras.initializers.HeNormal(seed=i)
        x = keras.layers.Conv2D(
            width,
            3,
            strides=2 if i < 3 else 1,
            padding="same",
            use_bias=False,
            kernel_initializer=init,
            name=f"conv{i}",
        )(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    keras.Model(inputs, x, name="tiny_backbone").save(path)
    return path
