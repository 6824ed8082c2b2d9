"""The tf.data input pipeline: parallel decode → drop undecodable → cache → shuffle → batch → prefetch.

A file that fails to decode (a truncated JPEG, say) is recorded in a :class:`DecodeLog` and dropped
from the stream together with its label, so training goes on and labels stay aligned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from imgclf.data.decode import DecodeLog, load_image
from imgclf.data.scan import ImageItem

__all__ = ["decoded_dataset", "batched", "labels_of", "fits_cache"]

AUTOTUNE = tf.data.AUTOTUNE


def fits_cache(n_images: int, image_size: int, cache_mb: int) -> bool:
    """Whether ``n_images`` decoded images fit the memory budget for the cache."""
    return n_images * image_size * image_size * 3 <= cache_mb * 2**20


def decoded_dataset(
    items: Sequence[ImageItem], image_size: int, log: DecodeLog, cache: bool = True
) -> tf.data.Dataset:
    """``(uint8 image, int32 label)`` pairs in ``items`` order, undecodable files removed."""
    blank = np.zeros((image_size, image_size, 3), np.uint8)

    def decode(path: bytes) -> tuple[np.ndarray, bool]:
        p = path.decode("utf-8")
        try:
            return load_image(p, image_size), True
        except Exception as exc:  # any decoder failure means "skip this file"
            log.record(p, exc)
            return blank, False

    def tf_decode(path: tf.Tensor, label: tf.Tensor):
        image, ok = tf.numpy_function(decode, [path], [tf.uint8, tf.bool], stateful=False)
        image.set_shape((image_size, image_size, 3))
        ok.set_shape(())
        return image, label, ok

    paths = [i.path for i in items]
    labels = np.array([i.label for i in items], np.int32)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(tf_decode, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.filter(_is_ok).map(_drop_flag)
    return ds.cache() if cache else ds


def _is_ok(image, label, ok):
    return ok


def _drop_flag(image, label, ok):
    return image, label


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
