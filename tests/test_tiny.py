"""Tiny pictures (issue 21.3): ``--model auto`` trains the ``tiny_cnn`` at their native size, and
the doctor compares pictures too small for a perceptual hash by their exact pixels."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

import imgclf
from imgclf.config import TrainConfig
from imgclf.constants import (
    AUTO_SCRATCH_MIN_IMAGES,
    AUTO_TINY_MAX_SIDE,
    AUTO_TINY_SETTINGS,
    TINY_HASH_MIN_SIDE,
)
from imgclf.data.duplicates import duplicate_clusters, phash, pixel_key
from imgclf.data.scan import scan_folder
from imgclf.models.choose import choose_model, resolve_model
from imgclf.models.tiny_cnn import build_tiny_cnn, pooling_steps

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def digits(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits as uint8 pictures (its 17 grey levels scaled to 0-255)."""
    d = sklearn_datasets.load_digits()
    x = np.clip(d.images * 16, 0, 255).astype(np.uint8)
    return x[:n], d.target[:n]


@pytest.mark.parametrize("side", [8, 16, 28, AUTO_TINY_MAX_SIDE])
@pytest.mark.parametrize("count", [300, 1437, 60_000])
def test_auto_takes_the_tiny_cnn_at_native_size_whatever_the_count(side, count):
    choice = choose_model("auto", [side] * count)
    assert (choice.model, choice.image_size) == ("tiny_cnn", side)
    assert dict(choice.settings) == dict(AUTO_TINY_SETTINGS)
    assert dict(choice.settings)["augment"] == "none"  # no flip: a mirrored 2 is not a 2
    assert f"median side {side} px" in choice.reason
    assert choice.line("auto").startswith(f"model: auto → tiny_cnn at {side} px")


def test_pictures_over_32_px_keep_the_previous_choice():
    over = AUTO_TINY_MAX_SIDE + 1
    assert choose_model("auto", [over] * 500).model == "efficientnet_lite0"
    assert choose_model("auto", [over] * AUTO_SCRATCH_MIN_IMAGES).model == "cnn"
    assert choose_model("auto", [over] * 500).settings == ()
    assert choose_model("cnn", [8] * 500).model == "cnn"  # a given --model always wins
    assert choose_model("tiny_cnn", [8] * 500).image_size == 8  # native, not 32
    assert choose_model("tiny_cnn", [100] * 500).image_size == 32  # its largest
    assert choose_model("auto", [8] * 500, image_size=16).image_size == 16
    assert choose_model("auto", [5] * 50).image_size == 8  # the smallest it builds


def test_the_users_options_win_over_the_tiny_paths_own():
    given = TrainConfig(data="x", augment="shift=0.1")
    assert resolve_model(given, [8] * 100)[0].settings == (("precise_bn", 0),)
    assert resolve_model(TrainConfig(data="x"), [8] * 100)[0].settings == AUTO_TINY_SETTINGS


@pytest.mark.parametrize(("size", "pools", "grid"), [(8, 1, 4), (16, 2, 4), (28, 2, 7), (32, 2, 8)])
def test_tiny_cnn_pools_down_to_a_few_cells_not_to_one(size, pools, grid):
    assert pooling_steps(size) == pools
    backbone = build_tiny_cnn(size)
    assert backbone.output.shape == (None, 128)
    last_conv = [layer for layer in backbone.layers if layer.name.endswith("_relu")][-1]
    assert last_conv.output.shape[1:3] == (grid, grid)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> tuple[imgclf.Run, dict]:
    """300 of the 8×8 digits as an .npz, trained by the default command (``--model auto``)."""
    base = tmp_path_factory.mktemp("tiny")
    x, y = digits(300)
    np.savez(base / "digits.npz", features=x, target=y)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGCLF_CACHE", str(base / "cache"))
        run = imgclf.train(
            base / "digits.npz", out=str(base / "runs"), report=False, verbose=0, epochs=12
        )
    return run, json.loads((run.path / "metrics.json").read_text())


def test_the_tiny_path_learns_300_digits(digits_run):
    run, metrics = digits_run
    config = (run.path / "config.yaml").read_text()
    assert "model: tiny_cnn" in config and "image_size: 8" in config and "augment: none" in config
    assert metrics["accuracy"] >= 0.85  # 30 test pictures never seen in training
    with open(run.path / "history.csv", newline="") as fh:
        assert float(list(csv.DictReader(fh))[-1]["val_accuracy"]) >= 0.85


def _save(x: np.ndarray, path, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(x, "L").save(path, **kwargs)


def test_the_doctor_compares_tiny_pictures_by_their_pixels(tmp_path):
    x, y = digits(120)
    root = tmp_path / "digits"
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        _save(img, root / str(label) / f"{i:04d}.png")
    # the same pixels in other bytes (another compression level), filed as another class
    copy = root / str((y[0] + 1) % 10) / "copy_of_0000.png"
    _save(x[0], copy, compress_level=9)
    report = imgclf.doctor(root)
    d = report.to_dict()["duplicates"]
    assert d["near_test"].startswith("exact pixel match")
    assert f"under {TINY_HASH_MIN_SIDE} px" in d["near_test"]
    assert [c["paths"] for c in d["clusters"]] == [
        [f"{y[0]}/0000.png", copy.relative_to(root).as_posix()]
    ]
    assert d["across_classes"] == 1
    text = report.format()
    assert "near duplicates: exact pixel match (images under 32 px are too small" in text
    assert any("exact pixel match" in line for line in report.summary())
    # pHash, the test before, joins distinct 8×8 digits (34 clusters of the 1,797 at 4 bits; the
    # closest two differ by 4 grey levels of 255 per pixel on average); the pixel test joins none
    x, _ = digits()
    pictures = [Image.fromarray(img).convert("RGB") for img in x]
    names = [str(i) for i in range(len(x))]
    assert len(duplicate_clusters(names, [phash(p) for p in pictures], 4)) >= 30
    keys = [pixel_key(p) for p in pictures]
    assert duplicate_clusters(names, [phash(p) for p in pictures], 4, keys) == []


def test_a_mixed_folder_names_both_tests(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        _save(rng.integers(0, 256, (8, 8), dtype=np.uint8), tmp_path / "d" / "a" / f"{i}.png")
        _save(rng.integers(0, 256, (64, 64), dtype=np.uint8), tmp_path / "d" / "b" / f"{i}.png")
    test = imgclf.doctor(tmp_path / "d").to_dict()["duplicates"]["near_test"]
    assert test.startswith("pHash distance <= 4 of 64 bits; exact pixel match for 3")
    assert scan_folder(tmp_path / "d").classes == ["a", "b"]
