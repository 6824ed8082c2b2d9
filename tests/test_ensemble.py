"""``imgclf train --ensemble N``: N models trained on the same split with their own seeds, and one
saved model that averages their probabilities, which everything after training reads like any
run's model. One run (module scope) with the tiny backbone, two members."""

from __future__ import annotations

import csv
import shutil
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import yaml
from helpers import make_dataset

import imgclf
from imgclf.cli import main
from imgclf.config import TrainConfig
from imgclf.constants import ENSEMBLE_NAME
from imgclf.data.decode import load_image
from imgclf.errors import ConfigError, InvalidValue
from imgclf.models.ensemble import average_models, ensemble_members
from imgclf.models.loading import load_model_file
from imgclf.runs import RunFiles, write_json
from imgclf.training.callbacks import HistoryCSV
from imgclf.training.ensemble import check_resumable, save_ensemble


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory, tiny_backbone):
    base = tmp_path_factory.mktemp("ensemble")
    data = make_dataset(base / "pets", {"cat": 16, "dog": 16, "fox": 16}, seed=31)
    result = imgclf.train(
        data,
        model=tiny_backbone,
        image_size=32,
        head_epochs=2,
        epochs=1,
        batch_size=8,
        augment="flip",  # each member has an augmentation block, which the ensemble leaves out
        ensemble=2,
        seed=5,
        out=str(base / "runs"),
        name="ens",
        verbose=0,
    )
    return result.run_dir


def _test_pixels(run_dir, n: int = 6) -> np.ndarray:
    with open(run_dir / RunFiles.SPLIT, newline="", encoding="utf-8") as fh:
        paths = [r["path"] for r in csv.DictReader(fh) if r["split"] == "test"][:n]
    data = yaml.safe_load((run_dir / RunFiles.CONFIG).read_text())["data"]
    return np.stack([load_image(f"{data}/{p}", 32) for p in paths]).astype("float32")


def test_the_run_model_averages_two_members_trained_with_their_own_seeds(ensemble):
    config = yaml.safe_load((ensemble / RunFiles.CONFIG).read_text())
    assert config["ensemble"] == 2 and config["seed"] == 5
    model = load_model_file(ensemble / RunFiles.MODEL, "model")
    assert model.name == ENSEMBLE_NAME and len(ensemble_members(model)) == 2
    members = [load_model_file(ensemble / "members" / k / RunFiles.MODEL, k) for k in "12"]
    assert (ensemble / "members" / "2" / RunFiles.HISTORY).is_file()
    assert not (ensemble / "members" / "2" / RunFiles.LAST).exists()  # never resumed: not kept
    x = _test_pixels(ensemble)
    outs = [m.predict(x, verbose=0) for m in members]
    assert not np.allclose(outs[0], outs[1], atol=1e-4)  # other seeds: other models
    np.testing.assert_allclose(model.predict(x, verbose=0), np.mean(outs, axis=0), atol=1e-5)


def test_each_member_fine_tunes_its_own_backbone(ensemble, tiny_backbone):
    pretrained = load_model_file(tiny_backbone, "backbone").get_weights()
    for k in "12":
        member = load_model_file(ensemble / "members" / k / RunFiles.MODEL, k)
        backbone = next(
            layer
            for layer in member.layers
            if isinstance(layer, keras.Model) and not isinstance(layer, keras.Sequential)
        )
        tuned = backbone.get_weights()
        assert len(tuned) == len(pretrained)
        assert any(not np.allclose(a, b) for a, b in zip(tuned, pretrained, strict=True)), k


def test_prediction_export_and_report_read_the_ensemble(ensemble, tmp_path):
    run = imgclf.load_run(ensemble)
    x = _test_pixels(ensemble)
    probs = run.predict_arrays(x)
    assert probs.shape == (len(x), 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    parity = run.export("tflite", out=tmp_path / "tflite")
    assert parity.good, parity.summary()
    page = (ensemble / RunFiles.REPORT).read_text(encoding="utf-8")
    assert "grad_cam" in page and "member2" in page  # the map of both, the summary of both
    assert "averages the probabilities of 2 models" in page and "mean of the 2 models' maps" in page


def test_grad_cam_of_an_ensemble_is_the_mean_of_its_members_maps(ensemble):
    from imgclf.reporting.explain import grad_cam

    model = load_model_file(ensemble / RunFiles.MODEL, "model")
    x, classes = _test_pixels(ensemble, 3), [0, 1, 2]
    maps = [grad_cam(m, x, classes) for m in ensemble_members(model)]
    mean = np.mean(maps, axis=0)
    peak = mean.reshape(len(mean), -1).max(axis=1).reshape(-1, 1, 1)
    np.testing.assert_allclose(grad_cam(model, x, classes), mean / peak, atol=1e-5)


def test_an_ensemble_run_is_never_resumed_and_says_what_to_do(ensemble, tmp_path, capsys):
    stopped = tmp_path / "stopped"
    (stopped / "members").mkdir(parents=True)
    with pytest.raises(ConfigError, match="cannot continue this --ensemble 3 run"):
        check_resumable(TrainConfig(data="d", ensemble=3), stopped)
    check_resumable(TrainConfig(data="d"), stopped)
    check_resumable(TrainConfig(data="d", ensemble=3), tmp_path)  # stopped in its first model
    shutil.rmtree(stopped)
    shutil.copytree(ensemble, stopped)
    (stopped / RunFiles.METRICS).unlink()
    write_json(stopped / RunFiles.STATE, {"stage": "head", "stage_epochs": 0})
    assert main(["train", "--resume", str(stopped)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ensemble 2 run" in err[0] and "imgclf predict" in err[0]


def test_the_options_it_does_not_combine_with_are_refused_by_name():
    with pytest.raises(InvalidValue, match="ensemble") as caught:
        TrainConfig(data="d", ensemble=0).validate()
    assert "from 1 to 8" in str(caught.value)
    with pytest.raises(InvalidValue, match="ensemble \\+ time_budget"):
        TrainConfig(data="d", ensemble=2, time_budget="5m").validate()


def _classifier(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    image = keras.Input((8, 8, 3), name="image")
    x = keras.Sequential([keras.layers.RandomFlip()], name="augmentation")(image)
    x = keras.layers.Dense(3, activation="softmax", name="predictions")(keras.layers.Flatten()(x))
    return keras.Model(image, x, name="classifier")


def test_a_member_stopped_before_its_first_checkpoint_is_left_out(tmp_path):
    first = SimpleNamespace(run_dir=tmp_path, model_path=tmp_path / RunFiles.MODEL, say=print)
    _classifier(1).save(first.model_path)
    (tmp_path / "members" / "2").mkdir(parents=True)  # member 2: no model.keras
    save_ensemble(first, 2)
    alone = load_model_file(first.model_path, "model")
    assert alone.name == "classifier" and (tmp_path / "members" / "1" / RunFiles.MODEL).is_file()
    with pytest.raises(ValueError, match="cannot average 1 model"):
        average_models([_classifier(2)])


def _ctrl_c_in(patch: pytest.MonkeyPatch, folder: str) -> None:
    """Ctrl-C after the first fine-tuning epoch of the member whose history.csv is in a folder
    named ``folder`` (the run folder's name for the first member)."""
    original = HistoryCSV.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, logs)
        if self.stage == "fine_tune" and self.path.parent.name == folder:
            raise KeyboardInterrupt

    patch.setattr(HistoryCSV, "on_epoch_end", on_epoch_end)


def _options(tmp_path, backbone: str, name: str) -> dict:
    common = dict(image_size=32, head_epochs=1, epochs=2, batch_size=8, augment="none")
    return dict(model=backbone, ensemble=2, out=str(tmp_path), name=name, verbose=0, **common)


def test_a_ctrl_c_in_the_first_member_is_resumed_and_then_trains_the_others(
    tmp_path, tiny_backbone, monkeypatch
):
    data = make_dataset(tmp_path / "pets", {"cat": 10, "dog": 10}, seed=3)
    with monkeypatch.context() as patch:
        _ctrl_c_in(patch, "first")
        stopped = imgclf.train(data, report=False, **_options(tmp_path, tiny_backbone, "first"))
    assert stopped.interrupted and not (stopped.run_dir / "members").exists()
    assert main(["train", "--resume", str(stopped.run_dir)]) == 0
    model = load_model_file(stopped.run_dir / RunFiles.MODEL, "model")
    assert len(ensemble_members(model)) == 2
    assert not (stopped.run_dir / RunFiles.STATE).exists()  # complete


def test_a_ctrl_c_in_a_later_member_averages_what_was_trained(
    tmp_path, tiny_backbone, monkeypatch, capsys
):
    data = make_dataset(tmp_path / "pets", {"cat": 10, "dog": 10}, seed=3)
    argv = ["train", str(data), "--model", tiny_backbone, "--image-size", "32", "--no-report"]
    argv += ["--head-epochs", "1", "--epochs", "2", "--batch-size", "8", "--augment", "none"]
    with monkeypatch.context() as patch:
        _ctrl_c_in(patch, "2")
        code = main([*argv, "--ensemble", "3", "--out", str(tmp_path), "--name", "later"])
    assert code != 0
    run_dir = tmp_path / "later"
    err = capsys.readouterr().err
    assert "averages the ensemble's members trained before the Ctrl-C" in err
    model = load_model_file(run_dir / RunFiles.MODEL, "model")
    assert len(ensemble_members(model)) == 2 and not (run_dir / "members" / "3").exists()
    assert main(["train", "--resume", str(run_dir)]) != 0
    assert "cannot continue this --ensemble 3 run" in capsys.readouterr().err
