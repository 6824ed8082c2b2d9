"""Precise BatchNorm statistics (imgclf.training.precise_bn): the from-scratch cnn's default, and
what it computes.
That a from-scratch run uses it is checked in the real run of test_scratch_plan.py."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from imgclf.cli import build_parser
from imgclf.config import TrainConfig
from imgclf.config_files import resolve_config
from imgclf.training.precise_bn import PreciseBatchNorm


def test_precise_bn_is_on_by_default_and_can_be_turned_off():
    assert TrainConfig().precise_bn == 20
    assert build_parser().parse_args(["train", "data", "--precise-bn", "0"]).precise_bn == 0
    assert resolve_config(data="x", precise_bn=5).precise_bn == 5


def test_the_moving_statistics_become_the_average_over_the_training_batches():
    inputs = keras.Input((2, 2, 1))
    bn = keras.layers.BatchNormalization(momentum=0.9, name="bn")
    backbone = keras.Model(inputs, bn(inputs))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (12, 2, 2, 1)).astype(np.uint8)
    train_raw = tf.data.Dataset.from_tensor_slices((images, np.zeros(12, np.int32)))
    callback = PreciseBatchNorm(backbone, train_raw, batches=3, batch_size=4, seed=0)
    callback.on_test_begin()
    # the batches the callback drew: all 12 images, 4 to a batch; pixels pooled per batch as
    # BatchNorm does
    drawn = np.concatenate([b.numpy() for b, _ in callback._data]).astype(np.float64).reshape(3, 16)
    assert sorted(drawn.ravel()) == sorted(images.astype(np.float64).ravel())
    np.testing.assert_allclose(bn.moving_mean.numpy(), [drawn.mean(axis=1).mean()], rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), [drawn.var(axis=1).mean()], rtol=1e-4)
    assert bn.momentum == 0.9  # restored
