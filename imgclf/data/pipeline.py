"""The tf.data input pipeline: parallel decode → drop undecodable → cache → shuffle → batch →
prefetch.

Plain JPEGs are decoded by TensorFlow's kernels (:mod:`imgclf.data.native`, same pixels as Pillow
to ±1), everything else by Pillow's :func:`load_image`. A file that fails to decode (a truncated
JPEG,
say) is recorded in a :class:`DecodeLog` and dropped from the stream together with its label, so
training goes on and labels stay aligned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from imgclf.data.decode import DecodeLog, load_image
from imgclf.data.native import RATIOS, decode_native, native_ratios
from imgclf.data.scan import ImageItem

__all__ = ["decoded_dataset", "batched", "labels_of", "fits_cache"]

AUTOTUNE = tf.data.AUTOTUNE


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
    """``(uint8 image, int32 label)`` pairs in ``items`` order, undecodable files removed.

    Plain JPEGs (see :mod:`imgclf.data.native`) are decoded by TensorFlow's own kernels, every other
    file by :func:`load_image` through ``tf.numpy_function``. A native decode that raises is retried
    with Pillow, which either decodes the file or records why it cannot in ``log``.

    Args:
        items: the images and their labels.
        image_size: side of the square decoded images in pixels.
        log: receives each file that cannot be decoded, with the reason.
        cache: cache the decoded images in memory (``Dataset.cache``). Defaults to True.
    """
    blank = np.zeros((image_size, image_size, 3), np.uint8)
    n = len(items)
    paths = [i.path for i in items]
    labels = np.array([i.label for i in items] + [0], np.int32)
    ratios = native_ratios(paths, image_size)
    routes = np.array([RATIOS.index(r) if r else _PILLOW for r in ratios] + [_END], np.int32)
    path_t = tf.constant(paths + [""], tf.string)
    label_t = tf.constant(labels)
    route_t = tf.constant(routes)

    def pillow(path: bytes) -> tuple[np.ndarray, bool]:
        p = path.decode("utf-8")
        try:
            return load_image(p, image_size), True
        except Exception as exc:  # any decoder failure means "skip this file"
            log.record(p, exc)
            return blank, False

    def tf_pillow(path: tf.Tensor):
        image, ok = tf.numpy_function(pillow, [path], [tf.uint8, tf.bool], stateful=False)
        image.set_shape((image_size, image_size, 3))
        ok.set_shape(())
        return image, ok

    def decode(i: tf.Tensor):
        path, route = path_t[i], route_t[i]
        branches = [
            lambda: (
                decode_native(path, route, image_size),
                tf.constant(True),
            ),  # routes 0-3: JPEG ratios
            lambda: tf_pillow(path),
            lambda: (tf.constant(blank), tf.constant(False)),
        ]
        image, ok = tf.switch_case(tf.maximum(route - (_PILLOW - 1), 0), branches)
        return image, ok, i

    def gaps(last: tf.Tensor, group):
        # positions skipped since the previous group are files whose native decode raised
        image, ok, i = group
        return i[-1], (image, ok, i, last + 1)

    def fill(image, ok, i, first):
        expected = tf.range(first, i[-1] + 1)

        def with_retries():  # Pillow retries the skipped positions; the group is put back in order
            missing = tf.sparse.to_dense(tf.sets.difference(expected[None], i[None]))[0]
            again = tf.map_fn(
                lambda j: tf_pillow(path_t[j]), missing, fn_output_signature=(tf.uint8, tf.bool)
            )
            positions = tf.concat([i, missing], 0)
            order = tf.argsort(positions)
            return (
                tf.gather(tf.concat([image, again[0]], 0), order),
                tf.gather(tf.concat([ok, again[1]], 0), order),
                tf.gather(positions, order),
            )

        image, ok, i = tf.cond(tf.size(expected) > tf.size(i), with_retries, lambda: (image, ok, i))
        # the usual group (all decoded) passes through without copying its images
        image, i = tf.cond(
            tf.reduce_all(ok),
            lambda: (image, i),
            lambda: (tf.boolean_mask(image, ok), tf.boolean_mask(i, ok)),
        )
        return image, tf.gather(label_t, i)

    # Gaps are found per group of decoded images, not per image: a per-image scan, retry and filter
    # cost more than the decode of a small JPEG. Position n is an end marker, so trailing failures
    # are retried too.
    # The functions use tf.cond/tf.switch_case, no Python control flow on tensors: AutoGraph's
    # source
    # rewrite of them would cost ~0.6-1.2 s of CPU per dataset built, for nothing (each `imgclf
    # predict`).
    plain = tf.autograph.experimental.do_not_convert
    ds = tf.data.Dataset.range(n + 1)
    ds = ds.map(plain(decode), num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors()
    ds = ds.batch(_GROUP).scan(tf.constant(-1, tf.int64), plain(gaps)).map(plain(fill)).unbatch()
    return ds.cache() if cache else ds


_PILLOW, _END = len(RATIOS), len(RATIOS) + 1  # routes after the native ratios
_GROUP = 64  # decoded images checked for gaps at a time


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
