"""``--model auto``: the chooser is a pure function of the data's facts and the budget; ``--model
X`` wins."""

from __future__ import annotations

import pytest

from imgclf.config import TrainConfig
from imgclf.constants import AUTO_MODEL, AUTO_SCRATCH_MAX_SIDE, AUTO_SCRATCH_MIN_IMAGES
from imgclf.errors import ConfigError
from imgclf.models.choose import choose_model, estimated_seconds


def test_auto_is_the_default():
    assert TrainConfig().model == AUTO_MODEL == "auto"


def test_many_small_pictures_get_the_cnn_at_native_size():
    choice = choose_model("auto", [44] * 60_000)  # over the tiny path's 32 px
    assert (choice.model, choice.image_size) == ("cnn", 48)  # to the next multiple of 8
    assert "60,000 images" in choice.reason and "44 px" in choice.reason
    assert choice.line("auto").startswith("model: auto → cnn at 48 px (60,000 images")
    assert choose_model("auto", [40] * AUTO_SCRATCH_MIN_IMAGES).image_size == 40
    assert (
        choose_model("auto", [44] * 60_000, budget_seconds=60).model == "cnn"
    )  # a budget does not change it


def test_tiny_pictures_get_the_tiny_cnn_however_many():
    for count in (100, AUTO_SCRATCH_MIN_IMAGES - 1, 60_000):  # Fashion-MNIST: 60,000 of 28 px
        choice = choose_model("auto", [28] * count)
        assert (choice.model, choice.image_size) == ("tiny_cnn", 28)


def test_few_small_pictures_or_larger_ones_keep_the_pretrained_backbone():
    few = choose_model("auto", [40] * (AUTO_SCRATCH_MIN_IMAGES - 1))
    assert few.model == "efficientnet_lite0"  # too few to learn from scratch
    over = choose_model("auto", [AUTO_SCRATCH_MAX_SIDE + 8] * 50_000)
    assert over.model == "efficientnet_lite0"


def test_100_px_photos_get_lite0_at_128_with_or_without_a_budget():
    for budget in (None, 45.0, 3600.0):  # the sign-language digits: the measured default
        choice = choose_model("auto", [100] * 2062, budget_seconds=budget)
        assert (choice.model, choice.image_size) == ("efficientnet_lite0", 128)


def test_large_photos_get_the_largest_backbone_the_budget_allows():
    sides = [400] * 2000
    assert (
        choose_model("auto", sides).model == "efficientnet_lite0"
    )  # no --time: the measured default
    assert choose_model("auto", sides).image_size == 224
    lite2 = estimated_seconds("efficientnet_lite2", 260, 2000)
    lite1 = estimated_seconds("efficientnet_lite1", 240, 2000)
    assert lite1 < lite2
    generous = choose_model("auto", sides, budget_seconds=lite2 * 1.01)
    assert (generous.model, generous.image_size) == ("efficientnet_lite2", 260)
    assert "--time" in generous.reason
    middle = choose_model("auto", sides, budget_seconds=(lite1 + lite2) / 2)
    assert (middle.model, middle.image_size) == ("efficientnet_lite1", 240)
    assert choose_model("auto", sides, budget_seconds=lite1 / 2).model == "efficientnet_lite0"
    # photos smaller than a backbone's trained size are not upsampled for it, whatever the budget
    assert choose_model("auto", [250] * 2000, budget_seconds=1e9).model == "efficientnet_lite1"


def test_the_users_model_and_size_always_win():
    choice = choose_model("efficientnet_lite0", [28] * 60_000)
    assert (choice.model, choice.image_size) == ("efficientnet_lite0", 128)
    assert (
        choice.line("efficientnet_lite0") == "model: efficientnet_lite0 at 128 px (--model given)"
    )
    assert choose_model("cnn", [400] * 10, budget_seconds=1e9).model == "cnn"
    assert choose_model("auto", [28] * 60_000, image_size=64).image_size == 64
    assert choose_model("auto", [400] * 2000, budget_seconds=1e9, image_size=128).image_size == 128
    with pytest.raises(ConfigError, match="model"):
        choose_model("no_such_model", [100])


def test_no_images_falls_back_to_lite0():
    assert choose_model("auto", []).model == "efficientnet_lite0"


def test_a_run_saves_the_model_auto_resolved_to(tmp_path, monkeypatch, capsys):
    import yaml
    from helpers import make_dataset

    import imgclf
    import imgclf.models.choose as choose
    from imgclf.runs import RunFiles

    monkeypatch.setattr(choose, "AUTO_SCRATCH_MIN_IMAGES", 10)  # 16 pictures count as "many" here
    data = make_dataset(tmp_path / "small", {"a": 8, "b": 8}, size=(40, 40))
    result = imgclf.train(
        data,
        epochs=1,
        batch_size=8,
        augment="none",
        report=False,
        out=str(tmp_path / "runs"),
        verbose=1,
    )
    assert "model: auto → cnn at 40 px (16 images, median side 40 px" in capsys.readouterr().out
    saved = yaml.safe_load((result.run_dir / RunFiles.CONFIG).read_text())
    assert (saved["model"], saved["image_size"]) == (
        "cnn",
        40,
    )  # --resume, evaluate and the report read this
    assert imgclf.load_run(result.run_dir).config.model == "cnn"
