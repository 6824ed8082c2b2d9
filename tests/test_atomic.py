"""imgclf.atomic: a failed or interrupted write never leaves half a file where a whole one was —
with
the failure injected where the bytes are written (a full disk, a read-only folder)."""

from __future__ import annotations

import errno
import json

import keras
import pytest

from imgclf.atomic import atomic_write, save_model_atomic, write_text_atomic
from imgclf.errors import DataError
from imgclf.models.loading import load_model_file
from imgclf.runs import create_run_dir, write_json
from imgclf.training.callbacks import RunState, SaveBest, SaveLast


def small_model(units: int = 2) -> keras.Model:
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units)])


def disk_fills_after(nbytes: int):
    """A ``write(path)`` that writes ``nbytes`` of junk, then fails as a full disk does."""

    def write(path):
        path.write_bytes(b"PK\x03\x04" + b"x" * nbytes)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    return write


def test_disk_full_while_saving_keeps_the_previous_model(tmp_path):
    target = tmp_path / "model.keras"
    save_model_atomic(small_model(2), target)
    before = target.read_bytes()
    model = small_model(3)
    model.save = disk_fills_after(5000)  # the failure happens inside Keras' own write
    with pytest.raises(DataError) as info:
        save_model_atomic(model, target)
    message = str(info.value)
    assert (
        message == f"cannot write {str(target)!r}: the disk is full; free some space or pass --out "
        "on another disk (the previous file is untouched)"
    )
    assert target.read_bytes() == before and load_model_file(target).output_shape == (None, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.keras"
    ]  # no temporary file left behind


def test_failed_first_write_leaves_no_file(tmp_path):
    target = tmp_path / "last.keras"
    with pytest.raises(DataError, match=r"the disk is full.*\(no partial file was left\)$"):
        atomic_write(target, disk_fills_after(100))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "code, says",
    [
        (errno.EROFS, "the file system is read-only; pass --out to a writable folder"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_read_only_and_permission_errors(tmp_path, monkeypatch, code, says):
    path = tmp_path / "metrics.json"

    def refuse(self, *args, **kwargs):
        raise OSError(code, "refused", str(self))

    monkeypatch.setattr(type(path), "write_text", refuse)
    with pytest.raises(DataError, match=f"cannot write '.*metrics.json': {says}"):
        write_json(path, {"accuracy": 1.0})
    assert not path.exists()


def test_other_errors_propagate_and_clean_up(tmp_path):
    def broken(path):
        path.write_text("half")
        raise ValueError("a bug, not a full disk")

    def interrupted(path):
        path.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(ValueError, match="a bug"):
        atomic_write(tmp_path / "x.json", broken)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "x.json", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_write_text_atomic_replaces_whole(tmp_path):
    path = tmp_path / "state.json"
    write_text_atomic(path, json.dumps({"a": 1}))
    write_text_atomic(path, "é" * 3)
    assert path.read_text(encoding="utf-8") == "ééé" and [p.name for p in tmp_path.iterdir()] == [
        "state.json"
    ]


def test_create_run_dir_on_a_folder_it_cannot_write(tmp_path, monkeypatch):
    import os

    real_mkdir = os.mkdir

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "ro")) and os.path.exists(tmp_path / "ro"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *args, **kwargs)

    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "mkdir", read_only)
    with pytest.raises(
        DataError,
        match=r"^cannot write '.*ro/pets': the file system is read-only; pass --out to a "
        r"writable folder$",
    ):
        create_run_dir(tmp_path / "ro", "pets")
    assert list((tmp_path / "ro").iterdir()) == []


def test_checkpoint_callbacks_save_whole_files(tmp_path):
    """SaveBest saves only on improvement (beating the threshold), SaveLast every epoch, RunState
    the
    state; each file is complete and loadable, and nothing temporary stays in the folder."""
    model = small_model(1)
    model.compile("adam", "mse")
    best = SaveBest(
        model, tmp_path / "model.keras", initial_value_threshold=-1.0
    )  # a loss never reached
    last = SaveLast(tmp_path / "last.keras")
    state = RunState(tmp_path / "state.json", "train", None, best)
    x = keras.ops.ones((8, 4))
    model.fit(
        x,
        x[:, :1],
        validation_data=(x, x[:, :1]),
        epochs=2,
        callbacks=[best, last, state],
        verbose=0,
    )
    assert not (tmp_path / "model.keras").exists()
    assert load_model_file(tmp_path / "last.keras", "checkpoint").optimizer.iterations.numpy() == 2
    assert json.loads((tmp_path / "state.json").read_text())["stage_epochs"] == 2
    best = SaveBest(model, tmp_path / "model.keras")
    model.fit(x, x[:, :1], validation_data=(x, x[:, :1]), epochs=1, callbacks=[best], verbose=0)
    assert load_model_file(tmp_path / "model.keras").output_shape == (None, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.keras", "model.keras", "state.json"]
