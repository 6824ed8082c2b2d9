"""The tf.data input pipeline: parallel decode → drop undecodable → cache → shuffle → batch → prefetch.

Plain JPEGs are decoded by TensorFlow's kernels (:mod:`imgclf.data.native`, same pixels as Pillow
to ±1), everything else by Pillow's :func:`load_image`. A file that fails to decode (a truncated JPEG,
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
    """Whether ``n_images`` decoded images fit the memory budget for the cache."""
    return n_images * image_size * image_size * 3 <= cache_mb * 2**20


def decoded_dataset(
    items: Sequence[ImageItem], image_size: int, log: DecodeLog, cache: bool = True
) -> tf.data.Dataset:
    """``(uint8 image, int32 label)`` pairs in ``items`` order, undecodable files removed.

    Plain JPEGs (see :mod:`imgclf.data.native`) are decoded by TensorFlow's own kernels, every other
    file by :func:`load_image` through ``tf.numpy_function``. A native decode that raises is retried
    with Pillow, which either decodes the file or records why it cannot in ``log``.
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
            lambda: (decode_native(path, route, image_size), tf.constant(True)),  # routes 0-3: JPEG ratios
            lambda: tf_pillow(path),
            lambda: (tf.constant(blank), tf.constant(False)),
        ]
        image, ok = tf.switch_case(tf.maximum(route - (_PILLOW - 1), 0), branches)
        return image, ok, i

    def retry(last: tf.Tensor, element):
        # a position skipped since the last element is a file whose native decode raised: Pillow retries it
        image, ok, i = element
        return i, (image, ok, i, last + 1)

    def with_retries(image, ok, i, first):
        def pillow_first():
            retried = tf.map_fn(
                lambda j: tf_pillow(path_t[j]), tf.range(first, i), fn_output_signature=(tf.uint8, tf.bool)
            )
            return (
                tf.concat([retried[0], image[None]], 0),
                tf.concat([retried[1], ok[None]], 0),
                tf.range(first, i + 1),
            )

        return tf.cond(first < i, pillow_first, lambda: (image[None], ok[None], i[None]))

    ds = tf.data.Dataset.range(n + 1)  # position n is an end marker, so trailing failures are retried too
    ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors()
    ds = ds.scan(tf.constant(-1, tf.int64), retry).map(with_retries).unbatch()
    ds = ds.filter(_is_ok).map(lambda image, ok, i: (image, tf.gather(label_t, i)))
    return ds.cache() if cache else ds


_PILLOW, _END = len(RATIOS), len(RATIOS) + 1  # routes after the native ratios


def _is_ok(image, ok, i):
    return ok


def _to_float(images, labels):
    return tf.cast(images, tf.float32), labels


def _label(image, label):
    return label


def batched(ds: tf.data.Dataset, batch_size: int, shuffle_seed: int | None = None, buffer: int = 0) -> tf.data.Dataset:
    """Shuffle (training only), batch, cast to float32 and prefetch."""
    if shuffle_seed is not None:
        ds = ds.shuffle(max(buffer, 1), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(_to_float, num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def labels_of(ds: tf.data.Dataset) -> np.ndarray:
    """All labels of an unbatched ``(image, label)`` dataset, in order (reads the cache if filled)."""
    return np.fromiter((int(y) for y in ds.map(_label).as_numpy_iterator()), dtype=np.int32)
