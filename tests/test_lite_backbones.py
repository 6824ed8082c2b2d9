"""The shipped EfficientNet-Lite1/Lite2 backbones: parity with PyTorch, registry entries, offline
training.

tests/data/efficientnet_liteN_parity.npz holds two 128-px images (a demo photo and noise) and the
pooled features the PyPI PyTorch model computes for them (written by
tools/convert_lite_backbones.py), so the parity of the shipped ``.keras`` files is checked here
without torch.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from helpers import history_rows, make_dataset

from imgclf.cli import main
from imgclf.models.lite import LITE_BACKBONES, lite_weights_path
from imgclf.models.registry import get_spec, list_models
from imgclf.runs import RunFiles

DATA = Path(__file__).parent / "data"
LITES = sorted(LITE_BACKBONES)


@pytest.fixture(scope="module", params=LITES)
def lite(request):
    """(name, backbone built through the registry) for each shipped Lite backbone."""
    return request.param, get_spec(request.param).builder(128)


def test_shipped_backbone_matches_pytorch_features(lite):
    name, backbone = lite
    ref = np.load(DATA / f"{name}_parity.npz")
    images, expected = ref["images"], ref["features"]
    assert images.dtype == np.uint8 and images.shape == (2, 128, 128, 3)
    got = np.asarray(backbone(images.astype("float32"), training=False))
    assert got.shape == expected.shape == (2, 1280)
    # float32 Keras vs float32 PyTorch: 7.5e-6 at conversion (docs/models.md); features reach about
    # 5
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    assert {w.dtype for w in backbone.weights} == {"float32"}


def test_shipped_file_sizes():
    for name in LITES:
        size = lite_weights_path(name).stat().st_size
        assert 10e6 < size < 25e6, f"{name}: {size} bytes"  # 4.2 M / 4.9 M float32 parameters


@pytest.mark.parametrize("name, size", [(n, LITE_BACKBONES[n][0]) for n in LITES])
def test_registry_entry_is_like_lite0s(name, size):
    spec, lite0 = get_spec(name), get_spec("efficientnet_lite0")
    assert name in [s.name for s in list_models()]
    assert spec.pretrained and spec.offline
    assert spec.default_size == size and spec.min_size == lite0.min_size
    assert spec.default_epochs == lite0.default_epochs
    assert "built in" in spec.description


def _stride_below(backbone: keras.Model, layer_name: str) -> int:
    names = [layer.name for layer in backbone.layers]
    below = backbone.layers[: names.index(layer_name)]
    return int(np.prod([getattr(layer, "strides", (1, 1))[0] for layer in below]))


def test_fine_tune_cut_has_lite0s_depth(lite):
    """The first fine-tuned layer starts the 112-channel stage (stride 16), as block8 does in
    Lite0."""
    name, backbone = lite
    lite0 = get_spec("efficientnet_lite0")
    cut = backbone.get_layer(get_spec(name).fine_tune_from)
    assert (
        _stride_below(backbone, cut.name)
        == _stride_below(lite0.builder(128), lite0.fine_tune_from)
        == 16
    )
    assert cut.filters == cut.input.shape[-1] * 6  # an expansion conv: the start of a block
    assert (
        cut.input.shape[-1] < backbone.get_layer(cut.name.replace("expand", "project")).filters
    )  # a new stage


@pytest.mark.usefixtures("private_cache")
def test_train_offline_from_the_command_line(tmp_path, monkeypatch, capsys):
    """Lite1 end to end (Lite2 takes the same path: the same loader, the same cut name); fine-tuning
    its last 3 layers (the stage runs; tracing the default depth's training graph would add a
    minute)."""
    name = "efficientnet_lite1"

    def no_download(*args, **kwargs):
        raise AssertionError("a built-in backbone must not download anything")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    data = make_dataset(tmp_path / "colours", {"red": 12, "blue": 12}, seed=3)
    code = main(
        [
            "train",
            str(data),
            "--model",
            name,
            "--image-size",
            "32",
            "--head-epochs",
            "1",
            "--epochs",
            "1",
            "--fine-tune",
            "3",
            "--batch-size",
            "8",
            "--augment",
            "none",
            "--out",
            str(tmp_path / "runs"),
            "--quiet",
            "--no-report",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    run = tmp_path / "runs" / "colours"
    assert yaml.safe_load((run / RunFiles.CONFIG).read_text())["model"] == name
    assert [r["stage"] for r in history_rows(run)] == ["head", "fine_tune"]
    assert (run / RunFiles.MODEL).is_file()


def test_models_command_lists_the_lite_backbones(capsys):
    assert main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    for name in LITES:
        assert name in lines and "offline" in lines[name]
