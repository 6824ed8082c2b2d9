"""Which images the doctor examines: every one, or, under ``--time``, the random sample that the
doctor's share of the budget allows (:data:`~imgclf.constants.DOCTOR_TIME_SHARE`), sized from the
rate of a first probe; and the line that says so."""

from __future__ import annotations

import time

import numpy as np

from imgclf.constants import DOCTOR_PROBE_IMAGES
from imgclf.data.file_facts import FileFacts, inspect_files
from imgclf.data.scan import ImageItem

__all__ = ["examine", "sample_note"]


def examine(
    items: list[ImageItem], progress: bool, seconds: float | None, seed: int
) -> tuple[list[ImageItem], list[FileFacts]]:
    """The images examined and their facts, in path order: every one, or, within ``seconds``, a
    seeded random sample: a probe of :data:`~imgclf.constants.DOCTOR_PROBE_IMAGES` times the rate,
    the rest sized from it.

    Args:
        items: the scanned images.
        progress: show the progress of reading the files.
        seconds: the time the doctor may take; None: examine every image.
        seed: the sample's random seed.
    """
    if seconds is None or len(items) <= DOCTOR_PROBE_IMAGES:
        return items, inspect_files([i.path for i in items], progress)
    order = np.random.default_rng(seed).permutation(len(items))
    start = time.perf_counter()
    probe = [items[i] for i in order[:DOCTOR_PROBE_IMAGES]]
    facts = inspect_files([i.path for i in probe], False)
    per_image = (time.perf_counter() - start) / len(probe)
    more = int(max(0.0, seconds - (time.perf_counter() - start)) / max(per_image, 1e-6))
    rest = [items[i] for i in order[DOCTOR_PROBE_IMAGES : DOCTOR_PROBE_IMAGES + more]]
    facts += inspect_files([i.path for i in rest], progress)
    chosen = sorted(range(len(probe) + len(rest)), key=lambda k: (probe + rest)[k].path)
    return [(probe + rest)[k] for k in chosen], [facts[k] for k in chosen]


def sample_note(examined: int, total: int) -> str:
    """The doctor's line about its sample (first in ``train``'s output).

    Args:
        examined: images examined.
        total: images there are.
    """
    return (
        f"doctor: examined a random sample of {examined:,} of {total:,} images to fit the time "
        "limit (undecodable files outside it are skipped while training; duplicates searched "
        "within it); `imgclf doctor DATA` examines every one"
    )
