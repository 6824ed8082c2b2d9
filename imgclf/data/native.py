"""Decode plain JPEGs with TensorFlow's kernels, exactly as the rest of imgclf sees them.

:func:`imgclf.data.decode.decode_image` is imgclf's one decode path; for a plain JPEG it runs
:func:`native_pixels` (eagerly), and the tf.data pipeline runs the very same function in the graph,
so a file gets the same pixels in training, evaluation, ``predict`` and ``serve``. For most photos
Pillow would do the same work: a JPEG decode at 1/1, 1/2, 1/4 or 1/8 scale (``draft``) and a
bilinear resize, which TensorFlow's C++ kernels do without the GIL or a Python call per image:
``tf.io.decode_jpeg(ratio=…, dct_method="INTEGER_ACCURATE")`` (the same libjpeg scaling and IDCT)
and ``tf.image.resize(bilinear, antialias=True)`` (the same triangle filter widened when
downscaling); the result is within ±1 of Pillow's.

Only files where that is the whole story take the native path: baseline or progressive 8-bit JPEGs
with 1 or 3 colour components and no orientation (EXIF tag 0x0112 or XMP ``tiff:Orientation``) and
not an MPO. :func:`jpeg_ratio` decides that from the file's markers, read by a small parser (a
fifteenth of the cost of opening the file with Pillow and reading its EXIF); anything it is unsure
about goes to Pillow.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf

__all__ = [
    "RATIOS",
    "HEAD_BYTES",
    "jpeg_ratio",
    "native_ratio",
    "native_ratios",
    "native_pixels",
    "decode_native",
]

RATIOS = (
    1,
    2,
    4,
    8,
)  # the scales libjpeg (and so Pillow's draft and tf.io.decode_jpeg) can decode at
HEAD_BYTES = 1 << 16  # markers before the scan; EXIF in APP1 is at most 64 KiB
_SOF_OK = {0xC0, 0xC1, 0xC2}  # baseline, extended sequential, progressive (Huffman)
_SOF_OTHER = {
    0xC3,
    0xC5,
    0xC6,
    0xC7,
    0xC9,
    0xCA,
    0xCB,
    0xCD,
    0xCE,
    0xCF,
}  # lossless, hierarchical, arithmetic


def _exif_orientation(tiff: bytes) -> int | None:
    """Orientation tag of IFD0 in a TIFF-structured EXIF block; 1 if absent; None if unreadable."""
    if tiff[:4] == b"II*\x00":
        order = "little"
    elif tiff[:4] == b"MM\x00*":
        order = "big"
    else:
        return None
    offset = int.from_bytes(tiff[4:8], order)
    if offset + 2 > len(tiff):
        return None
    count = int.from_bytes(tiff[offset : offset + 2], order)
    for k in range(count):
        entry = tiff[offset + 2 + 12 * k : offset + 14 + 12 * k]
        if len(entry) < 12:
            return None
        if int.from_bytes(entry[:2], order) == 0x0112:
            return (
                int.from_bytes(entry[8:10], order)
                if int.from_bytes(entry[2:4], order) == 3
                else None
            )
    return 1


def native_ratio(path: str, size: int) -> int:
    """The ``tf.io.decode_jpeg`` ratio that matches Pillow's decode of ``path``, or 0 to use Pillow.

    Args:
        path: the image file (only its first 64 KiB are read; see :func:`jpeg_ratio`).
        size: the side the image will be resized to.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return 0
    return jpeg_ratio(head, size)


def jpeg_ratio(head: bytes, size: int) -> int:
    """The ``tf.io.decode_jpeg`` ratio for a file starting with ``head``, or 0 to use Pillow.

    The ratio is Pillow's ``draft`` choice: the largest of 8, 4, 2, 1 not above either side divided
    by ``size``. Any file this parser does not fully understand returns 0.

    Args:
        head: the file's first :data:`HEAD_BYTES` bytes (or all of it, if shorter).
        size: the side the image will be resized to.
    """
    if head[:3] != b"\xff\xd8\xff":
        return 0
    pos, exif_seen, sof = 2, False, None
    n = len(head)
    while pos + 4 <= n:
        if head[pos] != 0xFF:
            return 0
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        length = int.from_bytes(head[pos + 2 : pos + 4], "big")
        if length < 2:
            return 0
        seg = head[pos + 4 : pos + 2 + length]
        if marker == 0xDA:  # start of scan: everything Pillow looks at has been seen
            break
        if marker == 0xE1:
            if seg[:6] == b"Exif\x00\x00":
                if not exif_seen:  # Pillow reads the first EXIF block only
                    exif_seen = True
                    if len(seg) < length - 2 or _exif_orientation(seg[6:]) != 1:
                        return 0
            elif (
                b"Orientation" in seg or len(seg) < length - 2
            ):  # XMP orientation (or cut off): Pillow's job
                return 0
        elif marker == 0xE2 and seg[:4] == b"MPF\x00":  # MPO: Pillow decodes it without draft
            return 0
        elif marker in _SOF_OK:
            if len(seg) < 6 or seg[0] != 8 or seg[5] not in (1, 3) or sof is not None:
                return 0
            sof = (int.from_bytes(seg[3:5], "big"), int.from_bytes(seg[1:3], "big"))
        elif marker in _SOF_OTHER:
            return 0
        pos += 2 + length
    else:
        return 0  # no start of scan within the first 64 KiB
    if sof is None or min(sof) < 1:
        return 0
    scale = min(sof[0] // size, sof[1] // size)
    return next((r for r in (8, 4, 2) if scale >= r), 1)


def native_ratios(paths: Sequence[str], size: int) -> list[int]:
    """:func:`native_ratio` of every path; chunks of files are read in a few threads (I/O overlaps).

    Args:
        paths: the image files.
        size: the side the images will be resized to.
    """
    chunk = 256
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    if len(chunks) <= 1:
        return [native_ratio(p, size) for p in paths]
    with ThreadPoolExecutor(max_workers=min(4, len(chunks))) as pool:
        parts = pool.map(lambda c: [native_ratio(p, size) for p in c], chunks)
        return [r for part in parts for r in part]


def decode_native(path: tf.Tensor, ratio_index: tf.Tensor, size: int) -> tf.Tensor:
    """``(size, size, 3)`` uint8 image of the JPEG at ``path`` decoded at ``RATIOS[ratio_index]``.

    Raises (as a TensorFlow op error) if the file cannot be decoded; the caller recovers.

    Args:
        path: scalar string tensor, the JPEG file.
        ratio_index: scalar int tensor, the index in ``RATIOS`` of the decode ratio (see
        :func:`native_ratio`). size: side of the square output in pixels.
    """
    return native_pixels(tf.io.read_file(path), ratio_index, size)


def native_pixels(contents: tf.Tensor, ratio_index: tf.Tensor, size: int) -> tf.Tensor:
    """``(size, size, 3)`` uint8 image of the JPEG bytes ``contents`` decoded at
    ``RATIOS[ratio_index]`` and resized as Pillow would: the in-graph pipeline and
    :func:`imgclf.data.decode.decode_image` (eagerly) both run exactly these kernels.

    Args:
        contents: scalar string tensor, the JPEG file's bytes.
        ratio_index: scalar int tensor, the index in ``RATIOS`` of the decode ratio.
        size: side of the square output in pixels.
    """

    def at(ratio: int):
        return lambda: tf.io.decode_jpeg(
            contents, channels=3, ratio=ratio, dct_method="INTEGER_ACCURATE"
        )

    image = tf.switch_case(ratio_index, [at(r) for r in RATIOS])
    shape = tf.shape(image)
    # Pillow widens the filter only along a side that shrinks; enlarging is plain bilinear, which
    # TensorFlow's ResizeBilinear kernel does several times faster than the antialiasing one.
    # Bilinear weights are non-negative and sum to 1, so values stay in [0, 255], and adding 0.5
    # before
    # truncating rounds half up, as Pillow's fixed-point resampler does. The 0.5 is added on the
    # smaller
    # side of the resize (the same sum either way): one float pass fewer over the larger image.
    image = tf.cond(
        tf.reduce_any(shape[:2] > size),
        lambda: tf.image.resize(image, (size, size), method="bilinear", antialias=True) + 0.5,
        lambda: tf.image.resize(tf.cast(image, tf.float32) + 0.5, (size, size), method="bilinear"),
    )
    return tf.cast(image, tf.uint8)
