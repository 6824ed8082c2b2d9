"""imgclf.training.recipe: where --fine-tune cuts the built-in backbone, what it freezes, and what a
fine-tuning run really changes in the backbone's weights."""

from __future__ import annotations

import re
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from helpers import history_rows, make_dataset

from imgclf.config import TrainConfig
from imgclf.errors import ConfigError
from imgclf.models.backbones import BUILTIN_WEIGHTS
from imgclf.models.classifier import iter_layers
from imgclf.models.registry import get_spec
from imgclf.runs import RunFiles
from imgclf.training.optim import EpochSchedule
from imgclf.training.recipe import choose_recipe, freeze_below
from imgclf.training.session import Session

SPEC_NAME = "efficientnet_lite0"


pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture(scope="module")
def spec():
    return get_spec(SPEC_NAME)


@pytest.fixture(scope="module")
def backbone(spec):
    """The built-in backbone, loaded once; tests that change trainable flags use ``fresh_flags``."""
    return spec.builder(64)


@pytest.fixture
def fresh_flags(backbone):
    """Give the shared backbone back with every layer's trainable flag as loaded."""
    saved = (backbone.trainable, [layer.trainable for layer in iter_layers(backbone)])
    yield backbone
    backbone.trainable = saved[0]
    for layer, flag in zip(iter_layers(backbone), saved[1], strict=True):
        layer.trainable = flag


def plan(backbone, spec, **options):
    return choose_recipe(backbone, spec, TrainConfig(data="x", **options), cache_allowed=True)


def names(backbone):
    return [layer.name for layer in backbone.layers]


def assert_clean_split(backbone, p):
    """bottom → top is the backbone: same shapes at the cut, same output on an image."""
    assert p.top is not None and p.bottom is not None
    assert tuple(p.bottom.output.shape) == tuple(p.top.input.shape)
    assert p.bottom.input.shape[1:] == backbone.input.shape[1:]
    assert p.top.output.shape[1:] == backbone.output.shape[1:]
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    whole = backbone(x, training=False)
    split = p.top(p.bottom(x, training=False), training=False)
    np.testing.assert_allclose(np.asarray(split), np.asarray(whole), rtol=1e-4, atol=1e-4)
    # the cut's top shares the backbone's layers (training it trains the backbone)
    cut = p.top.layers[1]
    assert backbone.get_layer(cut.name) is cut


# ---------------------------------------------------------------------------- choose_recipe


def test_auto_starts_at_block8_with_a_cached_split(backbone, spec):
    p = plan(backbone, spec, fine_tune="auto")
    assert spec.fine_tune_from == "block8_expand_conv"
    assert p.first == names(backbone).index("block8_expand_conv")
    assert (
        p.top.layers[1].name == "block8_expand_conv"
    )  # a clean cut exactly there (after block7_add)
    assert_clean_split(backbone, p)
    assert (
        len(p.top.layers) == len(backbone.layers) - p.first + 1
    )  # its own input, then the backbone's top


def test_none_means_no_fine_tuning(backbone, spec):
    p = plan(backbone, spec, fine_tune="none")
    assert p.first is None
    assert p.bottom is backbone and p.top is None  # the head trains on the whole backbone's output


def test_all_unfreezes_everything_without_a_cache(backbone, spec):
    p = plan(backbone, spec, fine_tune="all")
    assert p.first == 1  # everything after the input layer
    assert p.bottom is None and p.top is None


def test_last_n_layers_cuts_at_or_before_them(backbone, spec):
    p = plan(backbone, spec, fine_tune="23")
    assert p.first == len(backbone.layers) - 23
    cut_index = names(backbone).index(p.top.layers[1].name)
    assert cut_index <= p.first
    assert p.first - cut_index < 60
    assert_clean_split(backbone, p)


def test_fine_tune_from_a_layer_name(backbone, spec):
    p = plan(
        backbone, spec, fine_tune="none", fine_tune_from="block12_expand_conv"
    )  # it overrides --fine-tune
    assert p.first == names(backbone).index("block12_expand_conv")
    assert p.top.layers[1].name == "block12_expand_conv"
    assert_clean_split(backbone, p)


def test_no_cache_when_not_allowed(backbone, spec):
    p = choose_recipe(backbone, spec, TrainConfig(data="x"), cache_allowed=False)
    assert p.first == names(backbone).index("block8_expand_conv")
    assert p.bottom is None and p.top is None


def test_unknown_layer_name_lists_candidates(backbone, spec):
    with pytest.raises(
        ConfigError, match=r"invalid value for `fine_tune_from`: received 'block12_expand'"
    ) as info:
        plan(backbone, spec, fine_tune_from="block12_expand")
    message = str(info.value)
    assert "such as" in message
    candidates = re.search(r"such as (.*)$", message).group(1).split(", ")
    assert candidates and all(c in names(backbone) for c in candidates)
    assert "block12_expand_conv" in candidates  # names containing what was typed come first
    with pytest.raises(ConfigError, match=r"`fine_tune_from`.*'no_such_layer'.*such as \w+"):
        plan(backbone, spec, fine_tune_from="no_such_layer")


def test_more_layers_than_the_backbone_has_is_an_error(backbone, spec):
    n = len(backbone.layers)
    with pytest.raises(
        ConfigError, match=rf"invalid value for `fine_tune`: received {n};.*{n - 1} layers.*'all'"
    ):
        plan(backbone, spec, fine_tune=str(n))
    with pytest.raises(ConfigError, match="`fine_tune`"):
        plan(backbone, spec, fine_tune="10000")


@pytest.mark.parametrize("bad", ["0", "-3", "half", "1.5"])
def test_bad_fine_tune_values_are_rejected_by_the_config(bad):
    with pytest.raises(
        ConfigError, match=r"invalid value for `fine_tune`.*'auto', 'all', 'none' or a number"
    ):
        TrainConfig(data="x", fine_tune=bad).validate()


# ---------------------------------------------------------------------------- freeze_below


def test_freeze_below_splits_trainable_layers_and_keeps_batchnorm_frozen(fresh_flags, spec):
    backbone = fresh_flags
    first = names(backbone).index("block8_expand_conv")
    freeze_below(backbone, first)
    assert backbone.trainable
    bn = 0
    for i, layer in enumerate(backbone.layers):
        if isinstance(layer, keras.layers.BatchNormalization):
            bn += 1
            assert not layer.trainable, layer.name
        else:
            assert layer.trainable == (i >= first), layer.name
    assert bn > 40
    trainable = {id(w) for w in backbone.trainable_weights}
    for i, layer in enumerate(backbone.layers):
        for w in layer.weights:
            expected = i >= first and not isinstance(layer, keras.layers.BatchNormalization)
            assert (id(w) in trainable) == expected, (layer.name, w.name)
    assert any(i >= first for i, layer in enumerate(backbone.layers) if layer.trainable_weights)

    freeze_below(backbone, None)  # no fine-tuning: everything frozen
    assert not backbone.trainable and backbone.trainable_weights == []


# ---------------------------------------------------------------------------- a real fine-tuning
# run


def weights_by_layer(model: keras.Model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.asarray(w) for w in layer.weights] for layer in model.layers}


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    """(saved backbone weights, pristine weights, layer names, history rows) of a 2-epoch
    fine-tune."""
    import imgclf

    base = tmp_path_factory.mktemp("fine_tuned")
    data = make_dataset(base / "pets", {"cat": 12, "dog": 12}, seed=5)
    patch = pytest.MonkeyPatch()
    patch.setenv("IMGCLF_CACHE", str(base / "cache"))
    compiled, callbacks = (
        [],
        [],
    )  # what each fit really ran with: (model, optimizer, schedule), callbacks
    original_compile, original_callbacks = Session.compile, Session.callbacks

    def spy_compile(self, model, *args, **kwargs):
        original_compile(self, model, *args, **kwargs)
        compiled.append((model.name, model.optimizer, list(self._schedule)))

    def spy_callbacks(self, stage, **kwargs):
        out = original_callbacks(self, stage, **kwargs)
        callbacks.append((stage, out))
        return out

    patch.setattr(Session, "compile", spy_compile)
    patch.setattr(Session, "callbacks", spy_callbacks)
    try:
        result = imgclf.train(
            data,
            model=SPEC_NAME,
            image_size=32,
            head_epochs=1,
            epochs=2,
            fine_tune="auto",
            batch_size=8,
            augment="none",
            out=str(base / "runs"),
            verbose=0,
            report=False,
        )
    finally:
        patch.undo()
    saved = keras.saving.load_model(result.run_dir / RunFiles.MODEL)
    nested = [layer for layer in saved.layers if isinstance(layer, keras.Model)]
    pristine = keras.saving.load_model(BUILTIN_WEIGHTS)
    (inner,) = [m for m in nested if m.name == pristine.name]
    rows = history_rows(result.run_dir)
    bn = {
        layer.name
        for layer in pristine.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }
    spied = SimpleNamespace(compiled=compiled, callbacks=callbacks)
    return (
        weights_by_layer(inner),
        weights_by_layer(pristine),
        [layer.name for layer in pristine.layers],
        rows,
        bn,
        spied,
    )


def test_fine_tuning_improved_on_the_head_so_its_checkpoint_was_saved(fine_tuned):
    rows = fine_tuned[3]
    assert [(r["stage"], r["epoch"]) for r in rows] == [
        ("head", "1"),
        ("fine_tune", "2"),
        ("fine_tune", "3"),
    ]
    head = float(rows[0]["val_loss"])
    assert (
        min(float(r["val_loss"]) for r in rows[1:]) < head
    )  # else model.keras would hold the head-only model


def test_fine_tuning_changes_only_the_top_and_never_batchnorm(fine_tuned):
    saved, pristine, order, _, bn, _ = fine_tuned
    first = order.index("block8_expand_conv")
    assert saved.keys() == pristine.keys()
    changed = []
    for i, name in enumerate(order):
        for a, b in zip(saved[name], pristine[name], strict=True):
            same = a.shape == b.shape and np.array_equal(a, b)
            if name in bn:
                assert same, (
                    f"BatchNormalization {name} changed (gamma/beta/moving statistics "
                    "must stay frozen)"
                )
            elif i < first:
                assert same, f"{name} (before block8) changed"
            elif not same:
                changed.append(name)
    conv_changed = [n for n in changed if n.endswith(("_conv", "conv"))]
    assert conv_changed, "no conv kernel of block8+ changed: fine-tuning trained nothing"
    assert any(n.startswith(("block8_", "block9_")) for n in conv_changed)
    assert "head_conv" in conv_changed
    assert len(bn) > 40 and all(
        len(pristine[n]) == 4 for n in bn
    )  # gamma, beta, moving mean, moving variance
    assert not any(n in bn for n in changed)


def test_the_recipe_that_ran_is_the_one_in_the_config(fine_tuned):
    """The head and fine-tuning stages compiled with imgclf/config.py's defaults (optimizer, rates,
    discriminative backbone rate) and stopped early with its patience and min_delta."""
    defaults, spied = TrainConfig(data="x"), fine_tuned[5]
    head = [opt for name, opt, _ in spied.compiled if name == "head"]
    (fine,) = [opt for name, opt, _ in spied.compiled if name == "top_and_head"]
    assert head and all(
        float(opt.learning_rate) == pytest.approx(defaults.learning_rate) for opt in head
    )
    assert type(fine).__name__.lower().endswith(defaults.optimizer)
    assert getattr(fine, "backbone_scale", 1.0) == pytest.approx(defaults.backbone_lr_scale)
    schedule = fine._learning_rate  # the cosine: warms up to the fine-tuning peak
    assert (
        isinstance(schedule, keras.optimizers.schedules.CosineDecay)
        or defaults.lr_schedule != "cosine"
    )
    assert float(schedule.warmup_target or schedule.initial_learning_rate) == pytest.approx(
        defaults.fine_tune_learning_rate
    )
    stops = [
        cb
        for _, cbs in spied.callbacks
        for cb in cbs
        if isinstance(cb, keras.callbacks.EarlyStopping)
    ]
    assert [stage for stage, _ in spied.callbacks] == ["head", "fine_tune"] and len(stops) == 2
    for stop in stops:
        assert (stop.patience, abs(stop.min_delta)) == (
            defaults.patience,
            pytest.approx(defaults.min_delta),
        )
    assert not any(
        isinstance(cb, EpochSchedule) for _, cbs in spied.callbacks for cb in cbs
    )  # arrays: exact per step


def test_fine_tuning_stops_early_when_nothing_is_left_to_learn(tmp_path, capsys):
    """Red vs blue 64 px images: the first fine-tuning epoch takes validation loss to ~1e-4, after
    which no epoch can improve it by --min-delta, so the stage ends after patience more epochs
    instead of the
    model's 8, and the terminal says why."""
    from PIL import Image

    import imgclf

    rng = np.random.default_rng(0)
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(16):
            pixels = np.clip(np.array(colour) + rng.normal(0, 8, (64, 64, 3)), 0, 255).astype(
                np.uint8
            )
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
    result = imgclf.train(
        tmp_path / "data",
        model=SPEC_NAME,
        image_size=64,
        batch_size=8,
        head_epochs=5,
        augment="none",
        report=False,
        out=str(tmp_path / "runs"),
        verbose=1,
    )
    out = capsys.readouterr().out
    defaults, spec = TrainConfig(data="x"), get_spec(SPEC_NAME)
    fine = [row for row in history_rows(result.run_dir) if row["stage"] == "fine_tune"]
    assert defaults.patience < len(fine) < spec.default_epochs
    assert min(float(r["val_loss"]) for r in fine) < defaults.min_delta
    assert re.search(
        rf"fine_tune stopped early after epoch {fine[-1]['epoch']}: val_loss did not "
        r"improve by --min-delta",
        out,
    )
    assert result.metrics.accuracy == 1.0


def test_fine_tuning_is_skipped_when_the_head_is_already_perfect(capsys):
    """The rule behind the skip, without a training: every validation image right and a loss below
    --skip-fine-tune-loss, else fine-tuning runs."""
    from imgclf.training.stages import _nothing_left

    session = SimpleNamespace(cfg=TrainConfig(data="x"), say=print, stops=[])
    limit = session.cfg.skip_fine_tune_loss
    assert _nothing_left(session, limit / 10, 1.0, 50)
    assert (
        "stage fine_tune skipped: the head already classifies all 50 validation images correctly"
        in capsys.readouterr().out
    )
    assert session.stops == ["the head left nothing to learn"]  # the planned-vs-ran line says so
    assert not _nothing_left(
        session, limit / 10, 0.98, 50
    )  # one validation image wrong: fine-tuning may fix it
    assert not _nothing_left(session, limit * 2, 1.0, 50)
    assert not _nothing_left(session, limit / 10, 1.0, 0)
    session.cfg = TrainConfig(data="x", skip_fine_tune_loss=0)
    assert not _nothing_left(session, 0.0, 1.0, 50)


@pytest.mark.parametrize(
    "option, bad",
    [
        ("fine_tune_optimizer", "bogus"),
        ("min_delta", -1e-3),
        ("skip_fine_tune_loss", 2.0),
        ("backbone_lr_scale", 0.0),
        ("backbone_lr_scale", 1.5),
    ],
)
def test_bad_fine_tuning_controls_are_rejected_by_the_config(option, bad):
    with pytest.raises(ConfigError, match=rf"invalid value for `{option}`"):
        TrainConfig(data="x", **{option: bad}).validate()
