"""Inside the network: the model summary, feature maps of convolutional layers, and Grad-CAM.

Grad-CAM (Selvaraju et al., 2017): the gradient of the class's log-probability with respect to a late
convolutional feature map, averaged per channel, weights that map's channels; the positive part of
the weighted sum, upsampled to the image, shows where the evidence for the class lies. A run's model
is ``pixels → [augmentation] → backbone → dropout → dense``; the map is taken inside the backbone.
"""

from __future__ import annotations

import keras
import numpy as np

__all__ = ["model_summary", "split_model", "conv_layers", "grad_cam", "feature_maps", "MIN_CAM_SIDE"]

MIN_CAM_SIDE = 4  # prefer the last feature map at least this wide (a 2x2 map cannot localise much)


def model_summary(model) -> str:
    """``model.summary()`` as text (layers, output shapes, parameters, trainable), nested models expanded.

    Args:
        model: a Keras model.
    """
    lines: list[str] = []
    model.summary(print_fn=lambda s, line_break=True: lines.append(s), expand_nested=True, show_trainable=True, line_length=110)
    return "".join(lines) if all(s.endswith("\n") for s in lines[:-1]) else "\n".join(lines)


def split_model(model) -> tuple[keras.Model, list]:
    """``(backbone, head layers)`` of a run's classifier (augmentation is skipped: inference only).

    Args:
        model: the run's model.
    """
    backbone, head = None, []
    for layer in model.layers:
        if backbone is None:
            if isinstance(layer, keras.Model) and not isinstance(layer, keras.Sequential):
                backbone = layer
        else:
            head.append(layer)
    if backbone is None:
        raise ValueError(f"model {model.name!r} has no nested backbone model")
    return backbone, head


def conv_layers(backbone, image_size: int) -> list[tuple[str, int]]:
    """``(name, spatial side)`` of every layer of ``backbone`` with a 4-D output, in order.

    Args:
        backbone: the backbone model.
        image_size: the run's input size.
    """
    layers = [layer for layer in backbone.layers if len(layer.output.shape) == 4 and not isinstance(layer, keras.layers.InputLayer)]
    probe = keras.Model(backbone.inputs, [layer.output for layer in layers])
    outs = probe([np.zeros((1, image_size, image_size, 3), np.float32)], training=False)
    return [(layer.name, int(o.shape[1])) for layer, o in zip(layers, outs)]


def _cam_layer(backbone, image_size: int) -> str:
    """The last feature map before pooling that is at least MIN_CAM_SIDE wide (else the last one)."""
    pools = {layer.name for layer in backbone.layers if "Pooling" in type(layer).__name__}
    layers = [(name, side) for name, side in conv_layers(backbone, image_size) if name not in pools]
    wide = [name for name, side in layers if side >= MIN_CAM_SIDE]
    return wide[-1] if wide else layers[-1][0]


def grad_cam(model, images: np.ndarray, class_index: np.ndarray | list[int], layer: str | None = None) -> np.ndarray:
    """Grad-CAM heatmaps, one ``(h, w)`` map in [0, 1] per image, at the images' resolution.

    Args:
        model: the run's model (pixels in, class probabilities out).
        images: ``(n, h, w, 3)`` RGB pixels in [0, 255].
        class_index: the class to explain per image (e.g. the predicted one).
        layer: the backbone layer to take the map from (default: the last one at least
            :data:`MIN_CAM_SIDE` wide).
    """
    import tensorflow as tf

    images = np.asarray(images, np.float32)
    backbone, head = split_model(model)
    name = layer or _cam_layer(backbone, images.shape[1])
    grad_model = keras.Model(backbone.inputs, [backbone.get_layer(name).output, backbone.output])
    with tf.GradientTape() as tape:
        fmap, feats = grad_model([images], training=False)
        out = feats
        for h in head:
            out = h(out, training=False)
        probs = tf.concat([1.0 - out, out], axis=1) if out.shape[-1] == 1 else out
        picked = tf.gather(probs, np.asarray(class_index, np.int32), axis=1, batch_dims=1)
        score = tf.math.log(tf.maximum(picked, 1e-12))
    grads = tape.gradient(score, fmap)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1))[..., None]
    cam = tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, cam / np.maximum(peak, 1e-12), 0.0)


def feature_maps(model, image: np.ndarray, count: int = 3, channels: int = 8) -> list[tuple[str, np.ndarray]]:
    """Activations of ``count`` convolutional layers spread over the backbone's depth, for one image.

    Args:
        model: the run's model.
        image: ``(h, w, 3)`` RGB pixels in [0, 255].
        count: how many layers.
        channels: how many channels of each (the most active first).
    """
    backbone, _ = split_model(model)
    convs = [layer for layer in backbone.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    if not convs:
        return []
    picks = sorted({round(i) for i in np.linspace(0, len(convs) - 1, min(count, len(convs)))})
    chosen = [convs[i] for i in picks]
    probe = keras.Model(backbone.inputs, [layer.output for layer in chosen])
    outs = probe([np.asarray(image, np.float32)[None]], training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    result = []
    for layer, out in zip(chosen, outs):
        maps = np.asarray(out)[0]
        top = np.argsort(-maps.reshape(-1, maps.shape[-1]).std(axis=0))[:channels]
        result.append((layer.name, maps[..., top]))
    return result
