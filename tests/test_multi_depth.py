"""The multi-depth head (issue 21.2, imgclf.models.multi_depth): the features it reads, what the
``--time`` plan picks when no fine-tuning fits, the option's checks, and one real Lite0 run with it
saved, reloaded, predicted and exported to TFLite with its parity check."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import keras
import numpy as np
import pytest
import yaml
from helpers import make_dataset

import imgclf
from imgclf.cli import main
from imgclf.config import TrainConfig
from imgclf.data.scan import ImageItem
from imgclf.errors import ConfigError
from imgclf.models.classifier import (
    HEAD_NORM_L2,
    HEAD_NORM_LR_SCALE,
    build_classifier,
    head_learning_rate,
    resized,
)
from imgclf.models.multi_depth import (
    MULTI_DEPTH_HEAD_EPOCHS,
    MULTI_DEPTH_LAYERS,
    MULTI_DEPTH_NAME,
    MULTI_DEPTH_STEP,
    has_layers,
    multi_depth_classifier,
    multi_depth_features,
)
from imgclf.models.registry import get_spec
from imgclf.runs import RunFiles
from imgclf.training import plan as plan_module
from imgclf.training import pretrained_plan
from imgclf.training.activations import Activations
from imgclf.training.pretrained_budget import PretrainedBudget
from imgclf.training.run_plan import RunPlan
from imgclf.training.setup import classifier_for

SIZE = 96


@pytest.fixture(scope="module")
def lite0():
    return build_classifier(get_spec("efficientnet_lite0"), 3, SIZE, "flip", 0)


def test_the_features_pool_every_layer_twice_and_share_the_backbone(lite0):
    features = multi_depth_features(lite0.backbone)
    channels = sum(int(lite0.backbone.get_layer(n).output.shape[-1]) for n in MULTI_DEPTH_LAYERS)
    assert features.output.shape[-1] == 2 * channels  # average and max of each layer
    assert features.name == MULTI_DEPTH_NAME and has_layers(lite0.backbone)
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    last = lite0.backbone.get_layer(MULTI_DEPTH_LAYERS[-1]).output
    probe = keras.Model(lite0.backbone.input, last)
    maps = np.asarray(probe(x))
    out = np.asarray(features(x))
    tail = out[:, -2 * maps.shape[-1] :]  # the last layer's average, then its max
    np.testing.assert_allclose(tail[:, : maps.shape[-1]], maps.mean(axis=(1, 2)), atol=1e-4)
    np.testing.assert_allclose(tail[:, maps.shape[-1] :], maps.max(axis=(1, 2)), atol=1e-4)
    deeper = multi_depth_classifier(lite0, 3, SIZE, "flip", 0)
    assert deeper.backbone.weights[0] is lite0.backbone.weights[0]  # nothing loaded again
    assert deeper.head.input.shape[-1] == out.shape[-1]
    norm = [layer.name for layer in deeper.head.layers if layer.name == "head_norm"]
    assert norm and not any(layer.name == "head_norm" for layer in lite0.head.layers)
    smaller = resized(deeper, 3, 64, "flip", 0)  # --time's smaller input keeps the kind of head
    assert smaller.backbone is deeper.backbone and smaller.model.input_shape[1] == 64
    assert any(layer.name == "head_norm" for layer in smaller.head.layers)
    assert deeper.head.get_layer("head_norm").momentum == 0.9  # settles within a short --time head


def test_the_cache_keeps_the_last_layer_and_the_multi_depth_features_apart(lite0):
    cfg = TrainConfig(data="x", model="efficientnet_lite0", image_size=SIZE)
    deeper = multi_depth_classifier(lite0, 3, SIZE, "flip", 0)
    plain = Activations(cfg, lite0, lite0.backbone, "output").cache.key
    multi = Activations(cfg, deeper, deeper.backbone, "output").cache.key
    assert plain != multi


def _items(n: int, split: str) -> list[ImageItem]:
    return [ImageItem(f"{split}{k}.png", k % 3, split, 100, 100) for k in range(n)]


def _plan(
    monkeypatch,
    lite0,
    fine_tune_epochs: int,
    head_features: str = "auto",
    size_given: bool = True,
    head_epochs=lambda rates: 5,
):
    """plan_pretrained with measured rates and the budget faked: fine-tuning fits for
    ``fine_tune_epochs`` epochs, the head for ``head_epochs(rates)``."""
    by_split = {"train": _items(30, "train"), "val": _items(9, "val"), "test": _items(6, "test")}
    cfg = TrainConfig(
        data="x",
        model="efficientnet_lite0",
        image_size=SIZE,
        epochs=8,
        time_budget="45s",
        head_features=head_features,
    )

    def fake_budget(budget_s, left_s, n_train, n_val, n_test, n_classes, rates, **kw):
        head = head_epochs(rates)
        return PretrainedBudget(
            budget_s, left_s, 5.0, n_train, n_train, n_val, n_val, 1, head, fine_tune_epochs, 9.0
        )

    monkeypatch.setattr(plan_module, "slowdown", lambda: 1.0)
    monkeypatch.setattr(pretrained_plan, "forward_rate", lambda *a, **k: 0.005)
    monkeypatch.setattr(pretrained_plan, "top_rate", lambda *a, **k: 0.002)
    monkeypatch.setattr(pretrained_plan, "budget_pretrained", fake_budget)
    said: list[str] = []
    deadline = time.perf_counter() + 45
    plan, clf = plan_module.plan_run(
        cfg, lite0, by_split, 3, deadline, said.append, True, size_given
    )
    return cfg, plan, clf, said


def test_when_no_fine_tuning_fits_the_plan_reads_several_depths(monkeypatch, lite0):
    cfg, plan, clf, said = _plan(monkeypatch, lite0, fine_tune_epochs=0)
    assert clf.backbone.name == MULTI_DEPTH_NAME and plan.head_features == "multi"
    assert plan.recipe.first is None and plan.recipe.top is None
    assert plan.recipe.bottom is clf.backbone  # the head trains on its cached output
    assert any("--head-features multi" in line for line in said)
    assert plan.changes[-1] in said and plan.record["changes"] == list(plan.changes)
    written = plan.config(cfg)  # config.yaml: what a resumed run rebuilds
    assert (written.head_features, written.fine_tune) == ("multi", "none")


def test_the_multi_depth_head_grows_its_input_when_the_plan_still_fits(monkeypatch, lite0):
    # at the larger input the forward pass costs its pixel count more: (128 / 96)^2 × 0.005 s
    cases = ((25, True), (MULTI_DEPTH_HEAD_EPOCHS, True), (MULTI_DEPTH_HEAD_EPOCHS - 1, False))
    for at_larger, grows in cases:
        _cfg, plan, clf, said = _plan(
            monkeypatch,
            lite0,
            0,
            size_given=False,
            head_epochs=lambda rates, n=at_larger: 20 if rates.score < 0.006 else n,
        )
        size = SIZE + MULTI_DEPTH_STEP if grows else SIZE
        assert (plan.image_size, clf.model.input_shape[1]) == (size, size)
        assert clf.backbone.name == MULTI_DEPTH_NAME and plan.head_features == "multi"
        assert clf.backbone.weights[0] is lite0.backbone.weights[0]  # nothing loaded again
        grew = f"at {size}px rather than {SIZE}px" in said[-2]
        assert grew == grows and plan.head_epochs == (at_larger if grows else 20)
        assert plan.record["image_size"] == size
    # --image-size given: --time never changes it
    _cfg, plan, _clf, _said = _plan(monkeypatch, lite0, 0, head_epochs=lambda rates: 20)
    assert plan.image_size == SIZE and plan.head_features == "multi"


def test_the_multi_depth_head_is_penalised_and_steps_smaller(lite0):
    deeper = multi_depth_classifier(lite0, 3, SIZE, "flip", 0)
    penalty = deeper.head.get_layer("predictions").kernel_regularizer
    assert penalty is not None and penalty.get_config()["l2"] == pytest.approx(HEAD_NORM_L2)
    assert lite0.head.get_layer("predictions").kernel_regularizer is None
    assert head_learning_rate(deeper, 1e-3) == pytest.approx(1e-3 * HEAD_NORM_LR_SCALE)
    assert head_learning_rate(lite0, 1e-3) == 1e-3


def test_another_worker_takes_the_chiefs_multi_depth_head(monkeypatch, lite0):
    # a multi-worker --time run: the chief's plan switched to the multi-depth head; a worker whose
    # own plan (as asked) kept the last layer must train the same model, or the all-reduces differ
    from imgclf.training import multiworker_plan
    from imgclf.training.distribution import Distribution

    cfg, mine, clf, _said = _plan(monkeypatch, lite0, fine_tune_epochs=8, head_features="last")
    assert mine.head_features == "last"
    cfg = replace(cfg, head_features="auto")
    chief = np.array([SIZE, len(mine.train_items), len(mine.val_items), 1, 5, 0, 0, 9.0, 1.0])
    monkeypatch.setattr(multiworker_plan, "_from_chief", lambda dist, values: chief)
    other = Distribution("multi_worker", 2, None, worker=1, workers=2)
    by_split = {"train": list(mine.train_items), "val": list(mine.val_items), "test": []}
    plan, deeper = multiworker_plan.chief_plan(other, mine, clf, cfg, by_split, 3)
    assert deeper.backbone.name == MULTI_DEPTH_NAME and plan.head_features == "multi"
    assert deeper.backbone.weights[0] is lite0.backbone.weights[0]  # nothing loaded again
    assert plan.recipe.first is None and plan.recipe.bottom is deeper.backbone
    assert plan.epochs == 0 and plan.head_epochs == 5


def test_fine_tuning_that_fits_or_an_explicit_last_keeps_the_last_layer(monkeypatch, lite0):
    for epochs, asked in ((3, "auto"), (0, "last")):
        cfg, plan, clf, said = _plan(monkeypatch, lite0, epochs, asked)
        assert clf is lite0 and plan.head_features == "last"
        assert not any("--head-features" in line for line in said)
        assert plan.config(cfg).head_features == "last"


def test_a_smaller_input_reuses_the_loaded_backbone(monkeypatch, lite0):
    by_split = {"train": _items(30, "train"), "val": _items(9, "val"), "test": _items(6, "test")}
    cfg = TrainConfig(data="x", model="efficientnet_lite0", image_size=128, time_budget="45s")
    monkeypatch.setattr(pretrained_plan, "forward_rate", lambda *a, **k: 10.0)  # nothing fits
    said: list[str] = []
    deadline = time.perf_counter() + 45
    clf, _, changes = pretrained_plan.fit_size(
        cfg, lite0, by_split, 3, deadline, 1.0, False, said.append
    )
    assert clf.model.input_shape[1] == SIZE and changes == tuple(said)
    assert clf.backbone is lite0.backbone  # not loaded from its file again


def test_multi_needs_lite0_layers_and_no_fine_tuning():
    cfg = TrainConfig(data="x", model="cnn", image_size=32, head_features="multi")
    with pytest.raises(ConfigError, match=r"head_features.*'multi'.*only efficientnet_lite0"):
        classifier_for(get_spec("cnn"), cfg, 2)
    lite = replace(cfg, model="efficientnet_lite0", fine_tune_from="block8_expand_conv")
    with pytest.raises(ConfigError, match=r"--fine-tune-from block8_expand_conv.*frozen"):
        classifier_for(get_spec("efficientnet_lite0"), lite, 2)
    with pytest.raises(ConfigError, match="head_features"):
        TrainConfig(data="x", head_features="deep").validate()


def test_the_plan_records_what_the_head_read():
    cfg = TrainConfig(data="x", head_features="auto")
    plan = RunPlan(96, pretrained_plan.Recipe(None, None, None), (), (), 1, 5, 0, True)
    assert plan.config(cfg).head_features == "last"
    multi = replace(plan, head_features="multi")
    assert (multi.config(cfg).head_features, multi.config(cfg).fine_tune) == ("multi", "none")


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("multi")
    data = make_dataset(base / "data", {"a": 10, "b": 10, "c": 10}, fmt="jpg", seed=5)
    result = imgclf.train(
        data,
        model="efficientnet_lite0",
        image_size=SIZE,
        head_features="multi",
        head_epochs=3,
        views=1,
        batch_size=8,
        report=False,
        out=str(base / "runs"),
        verbose=0,
    )
    return result.run_dir


@pytest.mark.slow
def test_a_multi_depth_run_saves_reloads_predicts_and_exports(multi_run, tmp_path, capsys):
    config = yaml.safe_load((multi_run / RunFiles.CONFIG).read_text())
    assert (config["head_features"], config["fine_tune"]) == ("multi", "none")
    run = imgclf.load_run(multi_run)
    assert any(layer.name == MULTI_DEPTH_NAME for layer in run.model.layers)
    image = next((multi_run.parent.parent / "data" / "a").iterdir())
    assert run.predict([image])[0].label in ("a", "b", "c")
    out = tmp_path / "tflite"
    assert main(["export", str(multi_run), "--format", "tflite", "--out", str(out)]) == 0
    info = json.loads((out / "parity.json").read_text())  # the TFLite copy agrees with Keras
    assert info["good"] and info["max_abs_diff"] < 1e-4, capsys.readouterr().out
