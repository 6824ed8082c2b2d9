"""Image formats imgclf cannot read, recognised by extension or magic bytes, with how to convert
them.

A phone's HEIC photo or an AVIF from the web is a real image that Pillow (imgclf's decoder) cannot
open here; "not an image" would be wrong, so the scan names the format and a command that converts
it.
"""

from __future__ import annotations

__all__ = ["UNREADABLE", "format_from_extension", "format_from_magic", "unreadable_reason"]

# format -> (extensions, how to convert)
UNREADABLE: dict[str, tuple[frozenset[str], str]] = {
    "HEIC": (
        frozenset({".heic", ".heif", ".hif"}),
        "`heif-convert photo.heic photo.jpg` (libheif-examples) or `magick mogrify "
        "-format jpg *.heic`",
    ),
    "AVIF": (
        frozenset({".avif"}),
        "`magick mogrify -format jpg *.avif` or `avifdec photo.avif photo.png`",
    ),
    "JPEG XL": (
        frozenset({".jxl"}),
        "`djxl photo.jxl photo.png` (libjxl-tools) or `magick mogrify -format jpg *.jxl`",
    ),
    "camera RAW": (
        frozenset({".cr2", ".cr3", ".nef", ".arw", ".dng", ".orf", ".rw2", ".raf"}),
        "`darktable-cli photo.nef photo.jpg` or `magick mogrify -format jpg *.nef`",
    ),
    "SVG": (
        frozenset({".svg"}),
        "`rsvg-convert -o drawing.png drawing.svg` or `magick mogrify -format png *.svg`",
    ),
    "PSD": (frozenset({".psd"}), "`magick 'layers.psd[0]' layers.png`"),
}
_HEIF_BRANDS = {
    b"heic",
    b"heix",
    b"hevc",
    b"hevx",
    b"heim",
    b"heis",
    b"hevm",
    b"hevs",
    b"mif1",
    b"msf1",
}
_AVIF_BRANDS = {b"avif", b"avis"}


def format_from_extension(suffix: str) -> str | None:
    """The unreadable format an extension names (``".HEIC"`` -> ``"HEIC"``), else None.

    Args:
        suffix: a file extension with its dot, any case.
    """
    suffix = suffix.lower()
    return next((fmt for fmt, (exts, _) in UNREADABLE.items() if suffix in exts), None)


def format_from_magic(head: bytes) -> str | None:
    """The unreadable format a file's first bytes show (an ISO-BMFF ``ftyp`` brand, JPEG XL's
    signature), else None.

    Args:
        head: at least the file's first 12 bytes.
    """
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AVIF_BRANDS:
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIC"
    if head[:2] == b"\xff\x0a" or head[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "JPEG XL"
    if head[:4] == b"8BPS":
        return "PSD"
    return None


def unreadable_reason(fmt: str) -> str:
    """The skip reason for a file in ``fmt``: the format, and a command that converts it.

    Args:
        fmt: a key of :data:`UNREADABLE`.
    """
    return (
        f"{fmt} image, which imgclf cannot read; convert it to JPEG or PNG, e.g. "
        f"{UNREADABLE[fmt][1]}"
    )
