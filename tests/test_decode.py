"""imgclf.data.decode: every accepted file ends as a (size, size, 3) uint8 RGB array, as a viewer
shows it."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import orientation_jpeg, write_bad_files, write_mixed_images
from PIL import Image

from imgclf.data.decode import DecodeLog, load_image, to_rgb

MIXED_KINDS = [
    "jpeg",
    "png_gray_L",
    "png_palette_P_transparent",
    "png_RGBA",
    "png_16bit_I16",
    "bmp",
    "gif_animated",
    "webp",
    "jpeg_exif_orientation_6",
    "tiff",
]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return write_mixed_images(tmp_path_factory.mktemp("mixed"))


def test_fixture_has_the_modes_it_claims(mixed):
    modes = {kind: Image.open(path).mode for kind, path in mixed.items()}
    assert modes["png_gray_L"] == "L"
    assert modes["png_palette_P_transparent"] == "P"
    assert "transparency" in Image.open(mixed["png_palette_P_transparent"]).info
    assert modes["png_RGBA"] == "RGBA"
    assert modes["png_16bit_I16"].startswith("I;16")
    assert Image.open(mixed["gif_animated"]).n_frames == 2
    assert Image.open(mixed["jpeg_exif_orientation_6"]).getexif()[0x0112] == 6
    assert set(mixed) == set(MIXED_KINDS)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("kind", MIXED_KINDS)
def test_every_format_and_mode_decodes_to_rgb_uint8(mixed, kind, size):
    arr = load_image(str(mixed[kind]), size)
    assert arr.shape == (size, size, 3)
    assert arr.dtype == np.uint8


def test_grayscale_becomes_three_equal_channels(mixed):
    arr = load_image(str(mixed["png_gray_L"]), 32).astype(int)
    assert np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])


def test_animated_gif_uses_the_first_frame(mixed):
    arr = load_image(str(mixed["gif_animated"]), 32).astype(int)
    assert tuple(arr.reshape(-1, 3).mean(axis=0).round()) == (
        255,
        0,
        0,
    )  # frame 1 red, frame 2 blue


def mean_rgb(region) -> np.ndarray:
    return region.reshape(-1, 3).mean(axis=0)


def assert_colour(region, colour, where):
    got = mean_rgb(region)
    assert np.all(np.abs(got - np.array(colour)) < 40), (
        f"{where}: expected ~{colour}, got {got.round()}"
    )


@pytest.mark.parametrize(
    "orientation, top, bottom",
    [
        (1, None, None),  # no rotation: red left, blue right
        (6, (255, 0, 0), (0, 0, 255)),  # viewer turns it 90 deg clockwise: stored left -> top
        (
            8,
            (0, 0, 255),
            (255, 0, 0),
        ),  # viewer turns it 90 deg counter-clockwise: stored left -> bottom
    ],
)
def test_exif_orientation_is_applied(tmp_path, orientation, top, bottom):
    path = orientation_jpeg(tmp_path / f"o{orientation}.jpg", orientation, size=(48, 40))
    arr = load_image(str(path), 40).astype(float)
    if orientation == 1:
        assert_colour(arr[:, :14], (255, 0, 0), "left")
        assert_colour(arr[:, -14:], (0, 0, 255), "right")
    else:
        assert_colour(arr[:14], top, "top")
        assert_colour(arr[-14:], bottom, "bottom")
        # and the halves are not side by side any more
        assert np.abs(mean_rgb(arr[:, :14]) - mean_rgb(arr[:, -14:])).max() < 40


def test_exif_orientation_swaps_width_and_height_before_resizing(tmp_path):
    # a 48x40 stored image shown as 40x48: a thin red stripe along the stored top edge
    # must end up along the right edge (orientation 6 turns it clockwise)
    arr = np.full((40, 48, 3), 255, np.uint8)
    arr[:8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "stripe.jpg"
    Image.fromarray(arr).save(path, "JPEG", quality=95, exif=exif)
    out = load_image(str(path), 48).astype(float)
    assert_colour(out[:, -6:], (255, 0, 0), "right edge")
    assert_colour(out[:6, :30], (255, 255, 255), "top edge")


def test_rgba_transparent_pixels_become_white(mixed):
    arr = load_image(str(mixed["png_RGBA"]), 48).astype(int)  # 48x40 -> 48x48
    assert_colour(arr[:, :20], (255, 255, 255), "transparent left half")
    assert_colour(arr[:, 28:], (255, 0, 0), "opaque right half")


def test_palette_transparency_becomes_white(mixed):
    # palette index 0 (red) is transparent: columns 0, 4, 8, ... must be white, index 1 (blue) stays
    # blue
    arr = load_image(str(mixed["png_palette_P_transparent"]), 40).astype(int)
    assert tuple(arr[:, 0].mean(axis=0).round()) == (255, 255, 255)
    assert tuple(arr[:, 1].mean(axis=0).round()) == (0, 0, 255)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.linspace(1000, 40000, 32 * 32).reshape(32, 32).astype(np.uint16)
    path = tmp_path / "sixteen.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    arr = load_image(str(path), 32)  # same size: no resampling
    expected = values / 257.0
    assert np.abs(arr[..., 0].astype(float) - expected).max() <= 1.0
    assert arr[..., 0].min() < 10 and 150 < arr[..., 0].max() < 160  # not saturated at 255


def test_to_rgb_stretches_32_bit_images():
    im = Image.fromarray(np.array([[0, 1000], [2000, 4000]], np.int32), "I")
    arr = np.asarray(to_rgb(im))
    assert arr.shape == (2, 2, 3)
    assert arr[0, 0, 0] == 0 and arr[1, 1, 0] == 255


def test_to_rgb_la_over_white():
    la = Image.new("LA", (4, 4), (0, 0))
    assert np.asarray(to_rgb(la)).tolist() == np.full((4, 4, 3), 255).tolist()


def test_resize_squashes_to_a_square(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (200, 50), (10, 20, 30)).save(path)
    arr = load_image(str(path), 64)
    assert arr.shape == (64, 64, 3)
    assert tuple(arr[32, 32]) == (10, 20, 30)


def test_large_jpeg_is_decoded_at_the_requested_size(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (1600, 1200), (0, 128, 255)).save(path, quality=90)
    arr = load_image(str(path), 64)
    assert arr.shape == (64, 64, 3)
    assert_colour(arr, (0, 128, 255), "whole image")


@pytest.mark.parametrize("kind", ["truncated", "empty", "text_as_png"])
def test_undecodable_files_raise(tmp_path, kind):
    bad = write_bad_files(tmp_path / "bad")
    with pytest.raises((OSError, ValueError)):
        load_image(str(bad[kind]), 32)


def test_truncated_jpeg_raises_oserror_naming_truncation(tmp_path):
    bad = write_bad_files(tmp_path / "bad")
    with pytest.raises(OSError, match="truncated"):
        load_image(str(bad["truncated"]), 32)


def test_decode_log_keeps_first_line_of_the_reason():
    log = DecodeLog()
    log.record("/x/a.jpg", OSError("image file is truncated\nmore detail"))
    assert log.failures == {"/x/a.jpg": "cannot decode: image file is truncated"}


def test_cmyk_and_grayscale_jpegs(tmp_path):
    Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # printer red
    Image.new("L", (64, 48), 100).save(tmp_path / "gray.jpg")
    assert_colour(load_image(str(tmp_path / "cmyk.jpg"), 32).astype(float), (255, 0, 0), "cmyk")
    assert_colour(load_image(str(tmp_path / "gray.jpg"), 32).astype(float), (100, 100, 100), "gray")


@pytest.mark.parametrize("mode, colour", [("RGB", (255, 0, 0)), ("L", 100)])
def test_colour_key_transparency_becomes_white(tmp_path, mode, colour):
    path = tmp_path / f"key_{mode}.png"
    im = Image.new(mode, (40, 40), colour)
    im.paste((0, 0, 255) if mode == "RGB" else 0, (20, 0, 40, 40))  # right half opaque
    im.save(path, transparency=colour)  # left half is the transparent key colour
    arr = load_image(str(path), 40).astype(float)
    assert_colour(arr[:, :16], (255, 255, 255), "transparent left half")


def test_decode_image_takes_a_path_or_the_files_bytes(mixed):
    from imgclf.data.decode import decode_image, decode_with_pillow

    assert load_image is decode_with_pillow  # the older name: the Pillow route
    for kind in ("jpeg", "png_RGBA", "jpeg_exif_orientation_6", "png_gray_L"):
        path = mixed[kind]
        np.testing.assert_array_equal(decode_image(path, 32), decode_image(path.read_bytes(), 32))


def test_a_pillow_image_in_memory_gets_the_pillow_routes_pixels(mixed):
    from imgclf.data.decode import decode_with_pillow, image_to_pixels

    for kind in ("png_RGBA", "jpeg_exif_orientation_6", "png_palette_P_transparent"):
        with Image.open(mixed[kind]) as im:
            np.testing.assert_array_equal(
                image_to_pixels(im, 40), decode_with_pillow(str(mixed[kind]), 40)
            )


def test_one_reason_for_a_file_that_cannot_be_decoded():
    from imgclf.data.decode import decode_failure

    log = DecodeLog()
    log.record("a.jpg", OSError("image file is truncated\nmore detail"))
    log.reject("b.png", "too small: 1x1 pixels (minimum side 8)")
    assert log.failures == {
        "a.jpg": "cannot decode: image file is truncated",
        "b.png": "too small: 1x1 pixels (minimum side 8)",
    }
    assert decode_failure(ValueError()) == "cannot decode: ValueError"
