"""--ema (an exponential moving average of the weights in the fine-tuning stage, Keras' ``use_ema``
+ ``SwapEMAWeights``) and --augment mixup on the cached activations, through one tiny two-stage
run."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import history_rows, make_textured_dataset

import imgclf
from imgclf.cli import build_parser
from imgclf.config import TrainConfig
from imgclf.errors import ConfigError
from imgclf.models.classifier import iter_layers
from imgclf.runs import RunFiles, read_config
from imgclf.training import callbacks as cb
from imgclf.training import views as views_module
from imgclf.training.optim import scheduled_optimizer
from imgclf.training.session import Session

pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_ema_outside_0_1_is_rejected(bad):
    with pytest.raises(ConfigError, match=r"`ema`.*a momentum in \[0, 1\)"):
        TrainConfig(data="x", ema=bad).validate()


def test_ema_is_off_by_default_and_a_flag():
    assert TrainConfig(data="x").ema == 0.0
    assert build_parser().parse_args(["train", "DATA", "--ema", "0.99"]).ema == pytest.approx(0.99)


def test_the_optimizer_keeps_the_average_only_when_asked():
    opt, _ = scheduled_optimizer("adam", "cosine", 1e-3, 10, 3, ema=0.95)
    assert opt.use_ema and opt.ema_momentum == pytest.approx(0.95)
    scaled, _ = scheduled_optimizer("adam", "cosine", 1e-3, 10, 3, backbone_scale=0.5, ema=0.9)
    assert scaled.use_ema and scaled.backbone_scale == 0.5
    assert not scheduled_optimizer("adam", "cosine", 1e-3, 10, 3)[0].use_ema


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory, tiny_backbone):
    """A tiny two-stage run with --ema 0.5 and --augment flip,mixup=0.4, watching what the
    fine-tuning stage's checkpoints hold: at each SaveLast (before the swap) the weights being
    trained and the
    optimizer's averages; at each SaveBest, that it saved."""
    base = tmp_path_factory.mktemp("ema")
    data = make_textured_dataset(base / "data", {"a": 14, "b": 14, "c": 14})
    seen = {"last": {}, "best": [], "callbacks": [], "batches": []}
    patch = pytest.MonkeyPatch()
    patch.setenv("IMGCLF_CACHE", str(base / "cache"))
    last_end, best_end, callbacks, getitem = (
        cb.SaveLast.on_epoch_end,
        cb.SaveBest.on_epoch_end,
        Session.callbacks,
        views_module.ViewBatches.__getitem__,
    )

    def spy_last(self, epoch, logs=None):
        opt = self.model.optimizer
        if getattr(opt, "use_ema", False):
            raw = {v.path: np.array(v.numpy()) for v in self.model.trainable_variables}
            avg = {
                v.path: np.array(a.numpy())
                for v, a in zip(
                    self.model.trainable_variables, opt._model_variables_moving_average, strict=True
                )
            }
            seen["last"][epoch] = (raw, avg)
        last_end(self, epoch, logs)

    def spy_best(self, epoch, logs=None):
        before = self.best
        best_end(self, epoch, logs)
        if self.best < before and getattr(self.model.optimizer, "use_ema", False):
            seen["best"].append(epoch)

    def spy_callbacks(self, stage, **kwargs):
        out = callbacks(self, stage, **kwargs)
        seen["callbacks"].append((stage, [type(c).__name__ for c in out]))
        return out

    def spy_getitem(self, k):
        x, y = getitem(self, k)
        seen["batches"].append(np.array(y))
        return x, y

    patch.setattr(cb.SaveLast, "on_epoch_end", spy_last)
    patch.setattr(cb.SaveBest, "on_epoch_end", spy_best)
    patch.setattr(Session, "callbacks", spy_callbacks)
    patch.setattr(views_module.ViewBatches, "__getitem__", spy_getitem)
    try:
        result = imgclf.train(
            data,
            model=tiny_backbone,
            image_size=32,
            head_epochs=1,
            epochs=3,
            batch_size=8,
            ema=0.5,
            augment="flip,mixup=0.4",
            fine_tune_learning_rate=5e-3,
            out=str(base / "runs"),
            verbose=0,
            report=False,
        )
    finally:
        patch.undo()
    return result, seen


def test_ema_and_mixup_are_recorded_and_wired_into_fine_tuning_only(ema_run):
    result, seen = ema_run
    cfg = read_config(result.run_dir / RunFiles.CONFIG)
    assert cfg.ema == 0.5 and cfg.augment == "flip,mixup=0.4"
    stages = dict(seen["callbacks"])
    assert "SwapEMAWeights" not in stages["head"]
    names = stages["fine_tune"]
    # last.keras keeps the weights being trained; the average is swapped in before the best
    # checkpoint
    assert names.index("SaveLast") < names.index("SwapEMAWeights") < names.index("SaveBest")
    assert [r["stage"] for r in history_rows(result.run_dir)] == [
        "head",
        "fine_tune",
        "fine_tune",
        "fine_tune",
    ]
    # the fine-tuning batches of cached activations were mixed: soft one-hot targets
    assert seen["batches"] and any(not np.isin(y, (0.0, 1.0)).all() for y in seen["batches"])
    assert all(np.allclose(y.sum(axis=1), 1.0, atol=1e-5) for y in seen["batches"])


def test_the_saved_model_carries_the_averaged_weights(ema_run):
    """model.keras, saved at the last epoch that beat the best validation loss, holds the
    optimizer's
    moving average of every trainable weight, not the weights training had reached."""
    result, seen = ema_run
    assert seen["best"], (
        "fine-tuning never beat the head's validation loss, so model.keras holds no EMA"
    )
    raw, avg = seen["last"][seen["best"][-1]]
    saved = keras.saving.load_model(result.run_dir / RunFiles.MODEL)
    weights = {w.path: np.array(w.numpy()) for layer in iter_layers(saved) for w in layer.weights}
    compared = differs = 0
    for path, average in avg.items():
        if path in weights:
            np.testing.assert_allclose(weights[path], average, rtol=1e-5, atol=1e-6, err_msg=path)
            compared += 1
            differs += not np.allclose(average, raw[path])
    assert compared >= len(avg) // 2 and differs > 0
