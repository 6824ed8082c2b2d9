"""imgclf.data.native: JPEGs decoded in the graph match Pillow (decode_with_pillow) to ±1, and
decode_image (THE decode path) gives exactly the pipeline's pixels."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from helpers import orientation_jpeg, write_bad_files
from PIL import Image

from imgclf.data import pipeline
from imgclf.data.decode import DecodeLog, decode_with_pillow
from imgclf.data.native import RATIOS, decode_native, native_ratio
from imgclf.data.pipeline import decoded_dataset
from imgclf.data.scan import ImageItem


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    """Smooth gradients plus blurred noise: photo-like content with edges at several scales."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack(
        [np.sin(9 * x + 3 * y) * 90 + 128, np.cos(7 * y - 4 * x) * 80 + 120, x * y * 200 + 30], -1
    )
    noise = Image.fromarray(
        np.clip(rng.normal(128, 25, (h // 8 + 1, w // 8 + 1, 3)), 0, 255).astype(np.uint8)
    )
    noise = np.asarray(noise.resize((w, h), Image.Resampling.BICUBIC), float) - 128
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def native(path, size: int) -> np.ndarray:
    ratio = native_ratio(str(path), size)
    assert ratio in RATIOS, f"{path} should take the native path"
    return decode_native(tf.constant(str(path)), tf.constant(RATIOS.index(ratio)), size).numpy()


# (width, height), target size, expected ratio: enlarging, shrinking, both at once, each DCT scale
PARITY_CASES = [
    ((100, 100), 64, 1),
    ((100, 100), 128, 1),
    ((100, 100), 224, 1),
    ((300, 150), 224, 1),
    ((500, 375), 224, 1),
    ((640, 480), 100, 4),
    ((1200, 900), 224, 4),
    ((2400, 1800), 224, 8),
]
SAVE_OPTIONS = {
    "baseline": {"quality": 90},
    "444": {"quality": 75, "subsampling": 0},
    "progressive": {"quality": 85, "progressive": True},
}


@pytest.mark.parametrize("save", sorted(SAVE_OPTIONS))
@pytest.mark.parametrize("wh, size, ratio", PARITY_CASES)
def test_native_decode_matches_pillow(tmp_path, wh, size, ratio, save):
    path = tmp_path / "photo.jpg"
    photo(*wh).save(path, "JPEG", **SAVE_OPTIONS[save])
    assert native_ratio(str(path), size) == ratio
    a, b = native(path, size), decode_with_pillow(str(path), size)
    assert a.shape == b.shape == (size, size, 3) and a.dtype == np.uint8
    diff = np.abs(a.astype(int) - b.astype(int))
    # measured: mean 0.15-0.20, max 1 (the same libjpeg scaling and IDCT, the same triangle filter;
    # only float vs fixed-point rounding differs)
    assert diff.mean() < 0.5 and diff.max() <= 2


def test_native_grayscale_jpeg_matches_pillow(tmp_path):
    path = tmp_path / "gray.jpg"
    photo(120, 90).convert("L").save(path, "JPEG", quality=90)
    a, b = native(path, 64), decode_with_pillow(str(path), 64)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_ratio_is_pillows_draft_scale(tmp_path):
    for (w, h), size in [
        ((4000, 3000), 224),
        ((1000, 3000), 224),
        ((449, 449), 224),
        ((448, 500), 224),
        ((90, 90), 32),
    ]:
        path = tmp_path / f"{w}x{h}.jpg"
        Image.new("RGB", (w, h), (10, 20, 30)).save(path, "JPEG")
        with Image.open(path) as im:
            im.draft("RGB", (size, size))
            drafted = im.size
        ratio = native_ratio(str(path), size)
        assert ((w + ratio - 1) // ratio, (h + ratio - 1) // ratio) == drafted


def test_files_pillow_must_handle_are_routed_to_it(tmp_path):
    Image.new("RGB", (50, 50), (1, 2, 3)).save(tmp_path / "a.png")
    Image.new("CMYK", (50, 50), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", "JPEG")
    orientation_jpeg(tmp_path / "rot6.jpg", 6)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    Image.new("RGB", (50, 50)).save(tmp_path / "xmp.jpg", "JPEG", xmp=xmp)
    bad = write_bad_files(tmp_path / "bad")
    for name in ["a.png", "cmyk.jpg", "rot6.jpg", "xmp.jpg"]:
        assert native_ratio(str(tmp_path / name), 32) == 0, name
    assert native_ratio(str(bad["empty"]), 32) == 0
    assert native_ratio(str(tmp_path / "missing.jpg"), 32) == 0
    orientation_jpeg(tmp_path / "rot1.jpg", 1)  # EXIF present, orientation "normal": native
    assert native_ratio(str(tmp_path / "rot1.jpg"), 32) == 1


def test_truncated_jpeg_on_the_native_path_is_logged_and_dropped(tmp_path):
    items = []
    for i in range(5):
        path = tmp_path / f"{i}.jpg"
        Image.new("RGB", (40, 40), (255, 0, 0) if i % 2 == 0 else (0, 0, 255)).save(
            path, "JPEG", quality=95
        )
        items.append(ImageItem(str(path), i % 2))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(_jpeg_cut(tmp_path))
    assert native_ratio(str(cut), 32) == 4  # its header is complete: the native decoder gets it
    items.insert(2, ImageItem(str(cut), 0))
    items.append(ImageItem(str(cut), 1))  # a failure at the very end is found too
    log = DecodeLog()
    pairs = list(decoded_dataset(items, 32, log, cache=False).as_numpy_iterator())
    assert [int(y) for _, y in pairs] == [0, 1, 0, 1, 0]
    for image, label in pairs:
        assert (image[..., 0].mean() > 128) == (label == 0)
    assert set(log.failures) == {str(cut)}
    assert log.failures[str(cut)].startswith("cannot decode: ")


def _jpeg_cut(tmp_path) -> bytes:
    full = tmp_path / "full.jpg"
    photo(200, 200).save(full, "JPEG", quality=90)
    data = full.read_bytes()
    return data[: len(data) // 2]


def test_native_failures_are_retried_with_pillow(tmp_path, monkeypatch):
    """A file the native decoder rejects but Pillow reads (here: PNGs forced onto the native
    path)."""
    items = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (20, 20), (255, 0, 0) if i % 2 == 0 else (0, 0, 255)).save(path)
        items.append(ImageItem(str(path), i % 2))
    monkeypatch.setattr(pipeline, "native_ratios", lambda paths, size: [1] * len(paths))
    log = DecodeLog()
    ds = decoded_dataset(items, 24, log, cache=True)
    for _ in range(2):
        pairs = list(ds.as_numpy_iterator())
        assert sorted(int(y) for _, y in pairs) == [0, 0, 0, 1, 1, 1]
        for image, label in pairs:
            assert tuple(image.reshape(-1, 3).mean(axis=0).round()) == (
                (255, 0, 0) if label == 0 else (0, 0, 255)
            )
    assert log.failures == {}


def test_retries_across_groups_keep_order_and_labels(tmp_path, monkeypatch):
    """Gaps are found per group of decoded images: failures at a group's edges, a whole group of
    failures and failures at the end are all retried in place, in the original order."""
    n = 3 * pipeline._GROUP + 5
    fails = {
        0,
        pipeline._GROUP - 1,
        pipeline._GROUP,
        n - 1,
        *range(2 * pipeline._GROUP - 3, 3 * pipeline._GROUP + 2),
    }
    items = []
    for i in range(n):
        path = tmp_path / (f"{i}.png" if i in fails else f"{i}.jpg")
        Image.new("RGB", (16, 16), (i % 256, 0, 255 - i % 256)).save(path)
        items.append(ImageItem(str(path), i))
    monkeypatch.setattr(
        pipeline, "native_ratios", lambda paths, size: [1] * len(paths)
    )  # PNGs fail natively
    pairs = list(decoded_dataset(items, 8, DecodeLog(), cache=False).as_numpy_iterator())
    assert [int(y) for _, y in pairs] == list(range(n))
    for image, label in pairs:
        assert abs(int(image[..., 0].mean()) - label % 256) <= 2


def test_mixed_folder_keeps_every_image_with_its_label(tmp_path):
    items = []
    for i in range(8):
        colour = (255, 0, 0) if i % 2 == 0 else (0, 0, 255)
        path = tmp_path / (f"{i}.jpg" if i % 3 else f"{i}.png")
        Image.new("RGB", (30, 30), colour).save(path)
        items.append(ImageItem(str(path), i % 2))
    pairs = list(decoded_dataset(items, 16, DecodeLog()).as_numpy_iterator())
    assert sorted(int(y) for _, y in pairs) == sorted(i % 2 for i in range(8))
    for image, label in pairs:
        assert abs(int(image[..., 0].mean()) - (255 if label == 0 else 0)) <= 3
