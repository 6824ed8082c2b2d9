"""How a pretrained backbone is split for training: the frozen *bottom* whose activations are
cached, and the *top* that fine-tuning trains on them.

``--fine-tune`` says where the trainable top starts (``auto``: the model's recommended depth;
``all``; ``none``; ``N`` last layers; or ``--fine-tune-from LAYER``). The cache cut is the input of
that layer, or the nearest earlier tensor through which the whole graph passes (a cut inside a
residual block is moved back to the block's start; the layers in between stay frozen).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import keras
import numpy as np

from imgclf.config import TrainConfig
from imgclf.errors import invalid_value
from imgclf.models.classifier import Classifier, iter_layers
from imgclf.models.registry import ModelSpec

__all__ = ["Recipe", "choose_recipe", "freeze_below", "recipe_for_run"]

MAX_CUT_SEARCH = 60  # layers to walk back looking for a clean cut


@dataclass(frozen=True)
class Recipe:
    """What trains in a pretrained run and where the backbone is cut for the activation cache.

    ``first``: index of the first trainable backbone layer (None: no fine-tuning; 0: all).
    ``bottom``/``top``: the backbone split at a clean cut at or before ``first`` (None: no
    cache)."""

    first: int | None
    bottom: keras.Model | None
    top: keras.Model | None


def _first_trainable(backbone: keras.Model, spec: ModelSpec, cfg: TrainConfig) -> int | None:
    layers = backbone.layers
    names = [layer.name for layer in layers]
    if cfg.fine_tune_from:
        if cfg.fine_tune_from not in names:
            close = [n for n in names if cfg.fine_tune_from in n][:5] or names[-5:]
            raise invalid_value(
                "fine_tune_from",
                cfg.fine_tune_from,
                f"a layer of {backbone.name} such as {', '.join(close)}",
            )
        return names.index(cfg.fine_tune_from)
    if cfg.fine_tune == "none":
        return None
    if cfg.fine_tune == "all":
        return 1
    if cfg.fine_tune.isdigit():
        n = int(cfg.fine_tune)
        if n >= len(layers):
            raise invalid_value(
                "fine_tune",
                n,
                f"fewer than the {len(layers) - 1} layers of {backbone.name}; 'all' "
                "unfreezes every one",
            )
        return len(layers) - n
    if spec.fine_tune_from in names:
        return names.index(spec.fine_tune_from)
    return len(layers) - len(layers) // 3


def _split_at(backbone: keras.Model, index: int) -> tuple[keras.Model, keras.Model] | None:
    """(bottom, top) cut at the input of ``backbone.layers[index]``, or None if the graph does not
    pass through that one tensor."""
    layer = backbone.layers[index]
    if isinstance(layer, keras.layers.InputLayer) or not isinstance(layer.input, keras.KerasTensor):
        return None
    cut = layer.input
    try:
        top = keras.Model(cut, backbone.output, name="backbone_top")
        bottom = keras.Model(backbone.input, cut, name="backbone_bottom")
    except (
        ValueError,
        TypeError,
        KeyError,
    ):  # "graph disconnected": a skip connection crosses the cut
        return None
    return bottom, top


def choose_recipe(
    backbone: keras.Model, spec: ModelSpec, cfg: TrainConfig, cache_allowed: bool
) -> Recipe:
    """Decide what trains and where the activation cache cuts the backbone.

    Args:
        backbone: the pretrained backbone.
        spec: its registry entry (``fine_tune_from`` is the depth ``--fine-tune auto`` picks).
        cfg: the run's options; ``fine_tune`` and ``fine_tune_from`` are used.
        cache_allowed: False: no cut (fine-tuning on decoded images).
    """
    first = _first_trainable(backbone, spec, cfg)
    # without fine-tuning, the cached "bottom" is the whole backbone and the head trains on its
    # output
    target = len(backbone.layers) if first is None else first
    if not cache_allowed or target <= 1:
        return Recipe(first, None, None)
    if target == len(backbone.layers):
        return Recipe(first, backbone, None)
    for index in range(target, max(1, target - MAX_CUT_SEARCH), -1):
        split = _split_at(backbone, index)
        if split is not None:
            return Recipe(first, *split)
    return Recipe(first, None, None)


def freeze_below(backbone: keras.Model, first: int | None) -> None:
    """Layers before ``first`` frozen, the rest trainable; BatchNorm always frozen (inference mode).

    Args:
        backbone: the backbone to freeze in place.
        first: index of the first trainable layer; None freezes the whole backbone.
    """
    backbone.trainable = first is not None
    if first is None:
        return
    for i, layer in enumerate(backbone.layers):
        layer.trainable = i >= first
    for layer in iter_layers(backbone):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def recipe_for_run(
    clf: Classifier, cfg: TrainConfig, n_train: int, n_val: int, say=None
) -> Recipe | None:
    """The run's recipe (None for a from-scratch model): :func:`choose_recipe`, with no cut when the
    cached activations of ``n_train`` images × ``cfg.views`` and ``n_val`` images would exceed
    ``--cache-mb`` (fine-tuning then trains on decoded images).

    Args:
        clf: the classifier, built at the run's input size.
        cfg: the run's options.
        n_train: training images to cache.
        n_val: validation images to cache.
        say: prints a line for the user (None: silent). Defaults to None.
    """
    if not clf.spec.pretrained:
        return None
    recipe = choose_recipe(clf.backbone, clf.spec, cfg, cache_allowed=True)
    if recipe.top is None:
        return recipe
    cut_shape = recipe.bottom.compute_output_shape((1, cfg.image_size, cfg.image_size, 3))
    act_bytes = (n_train * cfg.views + n_val) * 4 * int(np.prod(cut_shape[1:]))
    if act_bytes <= cfg.cache_mb * 2**20:
        return recipe
    if say is not None:
        say("  activations exceed --cache-mb: fine-tuning on decoded images instead")
    return replace(recipe, bottom=None, top=None)
