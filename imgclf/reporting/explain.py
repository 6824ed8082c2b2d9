"""Inside the network: the model summary, feature maps of convolutional layers, and class-activation
maps.

A run's model is ``pixels → [augmentation] → backbone → dropout → dense``; the map is taken inside
the backbone, at a late convolutional feature map ``A`` (channels ``k``, cells ``ij``), from the
gradient ``g = d score / d A``:

- Grad-CAM (Selvaraju et al., 2017): ``relu(sum_k mean_ij(g_k) A_k)``: one weight per channel;
- HiResCAM (Draelos & Carin, 2020): ``relu(sum_k g_kij A_kij)``: gradient times activation per cell,
  no averaging over space. For a head of global average pooling and a dense layer it shows exactly
  the cells whose activations raised the score; Grad-CAM's averaging can light up cells the model
  did not use;
- Grad-CAM++ (Chattopadhay et al., 2018) and Grad-CAM with positive gradients only, for comparison.

The report uses :data:`CAM_METHOD` (HiResCAM): on the planted-patch test, over three seeds, it put a
median 0.55-0.63 of the mass on the patch (10 % of the image) for both the scratch CNN and
EfficientNet-Lite0; Grad-CAM 0.45-0.61 (docs/benchmarks.md, "Grad-CAM check").

The score is the class's logit minus the mean logit (a sigmoid unit's logit ``z`` gives ``z / 2``
for class 1 and ``-z / 2`` for class 0): unlike the log-probability its gradient does not vanish
when the model is sure. The layer is the last at stride 16 or finer (a residual block's output where
there is one): at 128 px the stride-32 head of EfficientNet-Lite0 is 4x4 and put a median 16 % of
the mass on the patch, its last stride-16 block output (8x8) 48 %.
"""

from __future__ import annotations

import keras
import numpy as np

from imgclf.models.ensemble import ensemble_members

__all__ = [
    "model_summary",
    "split_model",
    "conv_layers",
    "cam_layer",
    "grad_cam",
    "feature_maps",
    "MIN_CAM_SIDE",
    "MAX_CAM_STRIDE",
    "CAM_METHODS",
    "CAM_METHOD",
]

CAM_METHODS = {  # name -> how the report names it
    "gradcam": "Grad-CAM (Selvaraju et al. 2017)",
    "gradcam_pos": "Grad-CAM with positive gradients only",
    "gradcam++": "Grad-CAM++ (Chattopadhay et al. 2018)",
    "hirescam": "HiResCAM (Draelos & Carin 2020)",
}
CAM_METHOD = "hirescam"  # the report's choice (docs/benchmarks.md, "Grad-CAM check")
MIN_CAM_SIDE = 4  # prefer the last feature map at least this wide (a 2x2 map cannot localise much)
MAX_CAM_STRIDE = 16  # ... and at most this many pixels per cell


def model_summary(model) -> str:
    """``model.summary()`` as text (layers, output shapes, parameters, trainable), nested models
    expanded.

    Args:
        model: a Keras model.
    """
    lines: list[str] = []
    model.summary(
        print_fn=lambda s, line_break=True: lines.append(s),
        expand_nested=True,
        show_trainable=True,
        line_length=110,
    )
    return "".join(lines) if all(s.endswith("\n") for s in lines[:-1]) else "\n".join(lines)


def split_model(model) -> tuple[keras.Model, list]:
    """``(backbone, head layers)`` of a run's classifier (augmentation is skipped: inference only);
    of an ensemble's (``--ensemble``) first member.

    Args:
        model: the run's model.
    """
    backbone, head = None, []
    for layer in ensemble_members(model)[0].layers:
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
    layers = [
        layer
        for layer in backbone.layers
        if len(layer.output.shape) == 4 and not isinstance(layer, keras.layers.InputLayer)
    ]
    probe = keras.Model(backbone.inputs, [layer.output for layer in layers])
    outs = probe([np.zeros((1, image_size, image_size, 3), np.float32)], training=False)
    return [(layer.name, int(o.shape[1])) for layer, o in zip(layers, outs, strict=True)]


def cam_layer(backbone, image_size: int) -> str:
    """The layer Grad-CAM reads: the last feature map (pooling layers aside) at least
    :data:`MIN_CAM_SIDE` wide and at stride :data:`MAX_CAM_STRIDE` or finer, preferring the last
    residual ``Add`` among those (a block's output, which the whole graph passes through); else the
    last map.

    Args:
        backbone: the backbone model.
        image_size: the run's input size.
    """
    kinds = {layer.name: type(layer).__name__ for layer in backbone.layers}
    layers = [
        (name, side)
        for name, side in conv_layers(backbone, image_size)
        if "Pooling" not in kinds[name]
    ]
    least = max(MIN_CAM_SIDE, -(-image_size // MAX_CAM_STRIDE))
    wide = [name for name, side in layers if side >= least]
    adds = [name for name in wide if kinds[name] == "Add"]
    return (adds or wide or [layers[-1][0]])[-1]


def _class_score(head: list, features, class_index: np.ndarray):
    """The class's logit minus the mean logit, through the head's layers (the last one's activation
    undone by using its kernel and bias directly)."""
    import tensorflow as tf

    x = features
    for layer in head[:-1]:
        x = layer(x, training=False)
    dense = head[-1] if head else None
    if not isinstance(dense, keras.layers.Dense):
        raise ValueError(
            f"the classifier's last layer is {type(dense).__name__}, not a Dense output layer"
        )
    logits = tf.matmul(tf.cast(x, dense.kernel.dtype), dense.kernel) + dense.bias
    if (
        logits.shape[-1] == 1
    ):  # sigmoid: the logits of (class 0, class 1) are (0, z) up to a constant
        logits = tf.concat([tf.zeros_like(logits), logits], axis=1)
    picked = tf.gather(logits, class_index, axis=1, batch_dims=1)
    return picked - tf.reduce_mean(logits, axis=1)


def _cell_evidence(method: str, grads, fmap):
    """Per-cell evidence ``(n, h, w)`` before the ReLU, from the score's gradients and the map."""
    import tensorflow as tf

    if method == "hirescam":  # gradient x activation per cell, summed over channels
        return tf.reduce_sum(grads * fmap, axis=-1)
    if method == "gradcam":  # channel weights: gradients averaged over space
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    elif method == "gradcam_pos":  # ... only the positive gradients
        weights = tf.reduce_mean(tf.nn.relu(grads), axis=(1, 2), keepdims=True)
    elif method == "gradcam++":  # Chattopadhay et al. 2018, closed form for an exponential score
        g2, g3 = grads**2, grads**3
        denom = 2 * g2 + tf.reduce_sum(fmap, axis=(1, 2), keepdims=True) * g3
        alpha = tf.math.divide_no_nan(g2, denom)  # 0 where the denominator is 0
        weights = tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2), keepdims=True)
    else:
        raise ValueError(f"unknown CAM method {method!r}; expected one of {list(CAM_METHODS)}")
    return tf.reduce_sum(weights * fmap, axis=-1)


def grad_cam(
    model,
    images: np.ndarray,
    class_index: np.ndarray | list[int],
    layer: str | None = None,
    method: str = CAM_METHOD,
) -> np.ndarray:
    """Class-activation heatmaps (HiResCAM by default), one ``(h, w)`` map in [0, 1] per image, at
    the images' resolution.

    Args:
        model: the run's model (pixels in, class probabilities out); an ensemble's map is the
            mean of its members' maps.
        images: ``(n, h, w, 3)`` RGB pixels in [0, 255].
        class_index: the class to explain per image (e.g. the predicted one).
        layer: the backbone layer to take the map from (default: :func:`cam_layer`'s choice).
        method: how gradients and activations combine (one of :data:`CAM_METHODS`).
    """
    images = np.asarray(images, np.float32)
    name = layer or cam_layer(split_model(model)[0], images.shape[1])
    # an ensemble's map: the mean of its members' maps, each scaled to a peak of 1 first
    cam = np.mean(
        [
            _scaled(_member_cam(m, images, class_index, name, method))
            for m in ensemble_members(model)
        ],
        axis=0,
    )
    return _scaled(cam)


def _scaled(cam: np.ndarray) -> np.ndarray:
    """Each map divided by its peak (a map without a positive cell stays 0)."""
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, cam / np.maximum(peak, 1e-12), 0.0)


def _member_cam(model, images: np.ndarray, class_index, name: str, method: str) -> np.ndarray:
    """One classifier's class-activation maps at ``name``, at the images' resolution."""
    import tensorflow as tf

    backbone, head = split_model(model)
    # a sub-model of the backbone's own graph: its input to (the inner map, its features)
    grad_model = keras.Model(backbone.inputs, [backbone.get_layer(name).output, backbone.output])
    with tf.GradientTape() as tape:
        fmap, feats = grad_model([images], training=False)
        score = _class_score(head, feats, np.asarray(class_index, np.int32))
    cam = tf.nn.relu(_cell_evidence(method, tape.gradient(score, fmap), fmap))[..., None]
    return tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0].numpy()


def feature_maps(
    model, image: np.ndarray, count: int = 3, channels: int = 8
) -> list[tuple[str, np.ndarray]]:
    """Activations of ``count`` convolutional layers spread over the backbone's depth, for one
    image.

    Args:
        model: the run's model.
        image: ``(h, w, 3)`` RGB pixels in [0, 255].
        count: how many layers.
        channels: how many channels of each (the most active first).
    """
    backbone, _ = split_model(model)
    convs = [
        layer
        for layer in backbone.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
    ]
    if not convs:
        return []
    picks = sorted({round(i) for i in np.linspace(0, len(convs) - 1, min(count, len(convs)))})
    chosen = [convs[i] for i in picks]
    probe = keras.Model(backbone.inputs, [layer.output for layer in chosen])
    outs = probe([np.asarray(image, np.float32)[None]], training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    result = []
    for layer, out in zip(chosen, outs, strict=True):
        maps = np.asarray(out)[0]
        top = np.argsort(-maps.reshape(-1, maps.shape[-1]).std(axis=0))[:channels]
        result.append((layer.name, maps[..., top]))
    return result
