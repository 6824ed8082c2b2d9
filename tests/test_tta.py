"""imgclf.evaluation.tta: test-time augmentation's views, their average, and the --tta option."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.errors import ConfigError
from imgclf.evaluation.inference import apply_temperature, score_arrays
from imgclf.evaluation.tta import VIEWS, parse_tta, render_view, tta_views


@pytest.fixture(scope="module")
def model():
    """A tiny softmax model that is not mirror-symmetric (a dense layer over every pixel)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(0, 255, (5, 8, 8, 3)).astype("float32")


def _ramp() -> np.ndarray:
    """One 8x8 picture whose value grows to the right and downwards (same in every channel)."""
    row = np.arange(8, dtype="float32")
    ramp = (row[:, None] * 10 + row[None, :]) * 3
    return np.repeat(ramp[None, :, :, None], 3, axis=3)


def test_the_flip_view_is_the_mirror_image(images):
    flip = tta_views("flip")[1]
    np.testing.assert_array_equal(np.asarray(render_view(images, flip)), images[:, :, ::-1])
    np.testing.assert_array_equal(np.asarray(render_view(images, VIEWS[0])), images)


def test_zoom_and_shift_views_crop_where_they_say():
    x = _ramp()
    views = {v.name: np.asarray(render_view(x, v)) for v in VIEWS}
    assert all(v.shape == x.shape for v in views.values())
    # the centred zoom keeps the centre and narrows the range; corners move the content
    assert views["zoom"].mean() == pytest.approx(x.mean(), abs=0.5)
    assert np.ptp(views["zoom"]) < np.ptp(x)
    assert views["top-left"].mean() < x.mean() < views["bottom-right"].mean()
    assert views["top-right"][0, 0, -1, 0] > views["top-left"][0, 0, -1, 0]  # further right
    np.testing.assert_allclose(views["zoom+flip"], views["zoom"][:, :, ::-1])


def test_probabilities_are_the_average_of_the_views_and_sum_to_one(model, images):
    plain = score_arrays(model, images)
    mirror = np.asarray(model(images[:, :, ::-1]))
    flip = score_arrays(model, images, tta="flip")
    np.testing.assert_allclose(flip, (plain + mirror) / 2, atol=1e-6)
    assert not np.allclose(flip, plain, atol=1e-4)  # the mirror really changed the answer
    for n in (4, 12):
        views = tta_views(n)
        expected = np.mean([np.asarray(model(render_view(images, v))) for v in views], axis=0)
        got = score_arrays(model, images, tta=n)
        np.testing.assert_allclose(got, expected, atol=1e-6)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(score_arrays(model, images, tta="none"), plain)
    np.testing.assert_allclose(score_arrays(model, images, tta=1), plain)


def test_mirrored_views_only_where_the_training_flipped():
    assert [v.name for v in tta_views(4, "flip,rotate=10,zoom=0.1")] == [
        "image",
        "flip",
        "zoom",
        "zoom+flip",
    ]
    no_flip = tta_views(4, "rotate=10,zoom=0.1")
    assert [v.name for v in no_flip] == ["image", "zoom", "top-left", "bottom-right"]
    assert not any(v.flip for v in tta_views(6, "none"))
    assert [v.name for v in tta_views("flip", "none")] == ["image", "flip"]  # asked for by name
    assert tta_views(True) == tta_views("flip") and tta_views(False) == VIEWS[:1]


@pytest.mark.parametrize("bad", ["sideways", "13", 13, "-1", "2.5", 2.5, "4x"])
def test_bad_values_name_the_option_and_what_is_allowed(bad):
    with pytest.raises(ConfigError) as info:
        parse_tta(bad)
    message = str(info.value)
    assert "`tta`" in message and repr(bad) in message
    assert "'none', 'flip' or a number of views from 1 to 12" in message
    assert "\n" not in message


def test_too_many_views_for_a_run_without_flips():
    with pytest.raises(ConfigError, match="from 1 to 6 .this run trained without horizontal"):
        tta_views(7, "rotate=10")


def test_the_command_line_validates_tta_in_one_line(capsys):
    from imgclf.cli import build_parser, main

    assert main(["evaluate", "no-such-run", "--tta", "sideways"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--tta" in err and "sideways" in err and "'flip'" in err
    parser = build_parser()
    assert parser.parse_args(["predict", "run", "a.jpg", "--tta"]).tta == "flip"
    assert parser.parse_args(["predict", "run", "a.jpg", "--tta", "6"]).tta == "6"
    assert parser.parse_args(["evaluate", "run"]).tta == "none"


def test_a_run_without_flips_averages_unmirrored_views(trained_run, capsys):
    """The session's tiny run trained with ``augment="none"``: ``N`` views leave the mirror out,
    the evaluation takes ``--tta`` too, and asking for more views than it has is one line."""
    from imgclf.cli import main
    from imgclf.data.decode import load_image
    from imgclf.evaluation.evaluate import evaluate_run
    from imgclf.serving.predictor import load_run

    run = load_run(trained_run.run_dir, engine="keras")
    path = sorted((trained_run.data / "fox").glob("*.jpg"))[0]
    pixels = load_image(str(path), run.image_size)[None].astype("float32")
    zoom = np.asarray(render_view(pixels, tta_views(2, "none")[1]))
    raw = (score_arrays(run.model, pixels) + score_arrays(run.model, zoom)) / 2
    expected = apply_temperature(raw, run.temperature)  # the average is calibrated, as one answer
    np.testing.assert_allclose(run.predict_arrays(pixels, tta=2), expected, atol=1e-6)
    got = dict(run.predict(str(path), tta="2", top_k=3)[0].top_k)
    np.testing.assert_allclose([got[c] for c in run.classes], expected[0], atol=1e-4)
    assert evaluate_run(run, None, tta=3).n == evaluate_run(run, None).n
    with_views = run.evaluate(tta=3)  # the Run's own evaluate takes it too
    assert with_views.accuracy == evaluate_run(run, None, tta=3).accuracy
    assert main(["evaluate", str(trained_run.run_dir), "--tta", "7"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "from 1 to 6" in err and "without horizontal" in err
