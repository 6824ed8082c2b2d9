"""The tf.data input pipeline: check → parallel decode → drop undecodable → cache → shuffle →
batch → prefetch.

Training shuffles without holding the data: :func:`shuffled` reshuffles the *file order* every pass
(a seeded permutation of positions, 8 bytes an image) and decodes in that order, so no buffer of
decoded images grows with the data. Only images the in-memory cache holds anyway (``--cache-mb``)
are shuffled as decoded images, all of them (the shuffle holds references into the cache).

Every file is decoded as :func:`imgclf.data.decode.decode_image` decodes it (THE decode path): plain
JPEGs by TensorFlow's kernels in the graph (:func:`imgclf.data.native.native_pixels`), everything
else by :func:`imgclf.data.decode.decode_with_pillow`. A file that fails to decode (a truncated
JPEG, say) is recorded in a :class:`DecodeLog` and dropped from the stream together with its label,
so training goes on and labels stay aligned.

An item whose size is unknown (``width == 0``: it did not come from a scan, e.g. files to predict)
first gets the scan's header check (:func:`imgclf.data.file_facts.image_verdict`); a file it refuses
(empty, not an image, too small, a decompression bomb) is recorded with that verdict and dropped,
so ``predict`` refuses the files ``doctor`` and ``train`` refuse, in the same words.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from imgclf.data.decode import DecodeLog, decode_with_pillow
from imgclf.data.file_facts import image_verdicts
from imgclf.data.native import RATIOS, native_pixels, native_ratios
from imgclf.data.scan import ImageItem

__all__ = ["decoded_dataset", "shuffled", "batched", "labels_of", "fits_cache"]

AUTOTUNE = tf.data.AUTOTUNE
_PILLOW, _SKIP = len(RATIOS), len(RATIOS) + 1  # routes after the native ratios
_GROUP = 64  # decoded images checked for gaps at a time


def fits_cache(n_images: int, image_size: int, cache_mb: int) -> bool:
    """Whether ``n_images`` decoded images fit the memory budget for the cache.

    Args:
        n_images: the number of images.
        image_size: side of each decoded (square, RGB, uint8) image in pixels.
        cache_mb: the budget in MiB.
    """
    return n_images * image_size * image_size * 3 <= cache_mb * 2**20


def decoded_dataset(
    items: Sequence[ImageItem], image_size: int, log: DecodeLog, cache: bool = True
) -> tf.data.Dataset:
    """``(uint8 image, int32 label)`` pairs in ``items`` order, unusable files removed.

    Plain JPEGs (see :mod:`imgclf.data.native`) are decoded by TensorFlow's own kernels, every other
    file by Pillow through ``tf.numpy_function``. A native decode that raises is retried with
    Pillow, which either decodes the file or records why it cannot in ``log``.

    Args:
        items: the images and their labels.
        image_size: side of the square decoded images in pixels.
        log: receives each file that is refused or cannot be decoded, with the reason.
        cache: cache the decoded images in memory (``Dataset.cache``). Defaults to True.
    """
    steps = _Decoder(items, _routes(items, image_size, log), image_size, log)
    ds = steps.stream(tf.data.Dataset.range(len(items) + 1))
    ds = ds.cache() if cache else ds
    _SOURCES[ds] = _Source(steps, len(items), cache)
    return ds


class _Source:
    """What :func:`shuffled` needs of a dataset made by :func:`decoded_dataset`."""

    def __init__(self, steps: _Decoder, n: int, cached: bool):
        self.steps, self.n, self.cached = steps, n, cached


# each dataset decoded_dataset returned → its _Source (gone with the dataset)
_SOURCES: weakref.WeakKeyDictionary[tf.data.Dataset, _Source] = weakref.WeakKeyDictionary()


def shuffled(ds: tf.data.Dataset, seed: int) -> tf.data.Dataset:
    """``ds`` (from :func:`decoded_dataset`) in a new order every pass, seeded (the same orders on
    every run with the same seed); every image once a pass, its label with it.

    Memory does not grow with the data: uncached, the files' order is shuffled (a permutation of
    their positions, drawn each pass) and they are decoded in that order, with no buffer of
    decoded images. Cached (the images are in memory already), all of them are shuffled as decoded
    images, the shuffle holding references into the cache, as before the file-order shuffle
    existed (the same order).

    Args:
        ds: a dataset :func:`decoded_dataset` returned (not a transformation of it).
        seed: the seed of the sequence of orders.

    Raises:
        ValueError: ``ds`` did not come from :func:`decoded_dataset`.
    """
    source = _SOURCES.get(ds)
    if source is None:
        raise ValueError("shuffled() takes a dataset made by decoded_dataset(), unchanged")
    if source.cached:
        return ds.shuffle(max(source.n, 1), seed=seed, reshuffle_each_iteration=True)
    n, steps = source.n, source.steps
    plain = tf.autograph.experimental.do_not_convert

    def one_pass(draw: tf.Tensor) -> tf.data.Dataset:
        seeds = tf.stack([draw, tf.constant(seed, tf.int64)])
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seeds)
        order = tf.concat([order, [n]], 0)  # then the end marker
        return steps.reordered(order).stream(tf.data.Dataset.range(n + 1))

    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    return draws.flat_map(plain(one_pass))


def _routes(items: Sequence[ImageItem], image_size: int, log: DecodeLog) -> np.ndarray:
    """Each item's route (an index in ``RATIOS``, ``_PILLOW`` or ``_SKIP``), then ``_SKIP`` for the
    end marker; the header check's verdict on each unchecked item goes to ``log``."""
    paths = [i.path for i in items]
    routes = [RATIOS.index(r) if r else _PILLOW for r in native_ratios(paths, image_size)]
    unchecked = [k for k, item in enumerate(items) if item.width == 0]
    verdicts = image_verdicts([paths[k] for k in unchecked])
    for k, (reason, _, _) in zip(unchecked, verdicts, strict=True):
        if reason is not None:
            log.reject(paths[k], reason)
            routes[k] = _SKIP
    return np.array(routes + [_SKIP], np.int32)


def _gaps(last: tf.Tensor, group):
    """Positions skipped since the previous group are files whose native decode raised."""
    image, ok, i = group
    return i[-1], (image, ok, i, last + 1)


class _Decoder:
    """The per-element steps of :func:`decoded_dataset`, over constant tensors of its items.

    A stream position is an item's position (``order`` None), or the position in ``order`` of the
    item to decode there (:meth:`reordered`); the end marker's item is ``len(items)``.
    """

    def __init__(self, items: Sequence[ImageItem], routes: np.ndarray, size: int, log: DecodeLog):
        self.size, self.log = size, log
        self.blank = np.zeros((size, size, 3), np.uint8)
        self.paths = tf.constant([i.path for i in items] + [""], tf.string)
        self.labels = tf.constant(np.array([i.label for i in items] + [0], np.int32))
        self.routes = tf.constant(routes)
        self.order: tf.Tensor | None = None

    def reordered(self, order: tf.Tensor) -> _Decoder:
        """These steps over the items in ``order`` (item positions, the end marker last)."""
        steps = copy.copy(self)
        steps.order = order
        return steps

    def item(self, position: tf.Tensor) -> tf.Tensor:
        """The item (or items) decoded at stream ``position``."""
        return position if self.order is None else tf.gather(self.order, position)

    def stream(self, positions: tf.data.Dataset) -> tf.data.Dataset:
        """``(image, label)`` pairs of the items at ``positions`` (0 … n, the end marker last)."""
        # Gaps are found per group of decoded images, not per image: a per-image scan, retry and
        # filter cost more than the decode of a small JPEG. Position n is an end marker, so
        # trailing failures are retried too. The functions use tf.cond/tf.switch_case, no Python
        # control flow on tensors: AutoGraph's source rewrite of them would cost ~0.6-1.2 s of CPU
        # per dataset built, for nothing (each `imgclf predict`).
        plain = tf.autograph.experimental.do_not_convert
        ds = positions.map(plain(self.decode), num_parallel_calls=AUTOTUNE, deterministic=True)
        ds = ds.ignore_errors().batch(_GROUP).scan(tf.constant(-1, tf.int64), plain(_gaps))
        return ds.map(plain(self.fill)).unbatch()

    def pillow(self, path: bytes) -> tuple[np.ndarray, bool]:
        p = path.decode("utf-8")
        try:
            return decode_with_pillow(p, self.size), True
        except Exception as exc:  # any decoder failure means "skip this file"
            self.log.record(p, exc)
            return self.blank, False

    def tf_pillow(self, path: tf.Tensor):
        image, ok = tf.numpy_function(self.pillow, [path], [tf.uint8, tf.bool], stateful=False)
        image.set_shape((self.size, self.size, 3))
        ok.set_shape(())
        return image, ok

    def decode(self, i: tf.Tensor):
        item = self.item(i)
        path, route = self.paths[item], self.routes[item]
        branches = [
            lambda: (  # routes 0-3: JPEG ratios
                native_pixels(tf.io.read_file(path), route, self.size),
                tf.constant(True),
            ),
            lambda: self.tf_pillow(path),
            lambda: (tf.constant(self.blank), tf.constant(False)),
        ]
        image, ok = tf.switch_case(tf.maximum(route - (_PILLOW - 1), 0), branches)
        return image, ok, i

    def retried(self, image, ok, i, expected):
        """Pillow retries the positions of ``expected`` missing from ``i``; back in order."""
        missing = tf.sparse.to_dense(tf.sets.difference(expected[None], i[None]))[0]
        again = tf.map_fn(
            lambda j: self.tf_pillow(self.paths[self.item(j)]),
            missing,
            fn_output_signature=(tf.uint8, tf.bool),
        )
        positions = tf.concat([i, missing], 0)
        order = tf.argsort(positions)
        return (
            tf.gather(tf.concat([image, again[0]], 0), order),
            tf.gather(tf.concat([ok, again[1]], 0), order),
            tf.gather(positions, order),
        )

    def fill(self, image, ok, i, first):
        expected = tf.range(first, i[-1] + 1)
        image, ok, i = tf.cond(
            tf.size(expected) > tf.size(i),
            lambda: self.retried(image, ok, i, expected),
            lambda: (image, ok, i),
        )
        # the usual group (all decoded) passes through without copying its images
        image, i = tf.cond(
            tf.reduce_all(ok),
            lambda: (image, i),
            lambda: (tf.boolean_mask(image, ok), tf.boolean_mask(i, ok)),
        )
        return image, tf.gather(self.labels, self.item(i))


def _label(image, label):
    return label


def batched(
    ds: tf.data.Dataset, batch_size: int, shuffle_seed: int | None = None, buffer: int = 0
) -> tf.data.Dataset:
    """Shuffle (training only), batch and prefetch.

    Batches stay uint8: a Keras model casts its input to float32 itself (on the GPU, when there is
    one), so the pipeline moves a quarter of the bytes and never allocates float copies.

    Args:
        ds: an unbatched ``(image, label)`` dataset.
        batch_size: images per batch.
        shuffle_seed: seed of a shuffle reshuffled every epoch; None (the default) does not shuffle.
        buffer: the shuffle buffer size (at least 1). Defaults to 0.
    """
    if shuffle_seed is not None:
        ds = ds.shuffle(max(buffer, 1), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def labels_of(ds: tf.data.Dataset) -> np.ndarray:
    """All labels of an unbatched ``(image, label)`` dataset, in order (reads the cache if filled).

    Args:
        ds: the dataset, e.g. from :func:`decoded_dataset`.
    """
    return np.fromiter((int(y) for y in ds.map(_label).as_numpy_iterator()), dtype=np.int32)
