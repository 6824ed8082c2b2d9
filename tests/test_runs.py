"""imgclf.runs: run folders are created, never overwritten, and checked before use."""

from __future__ import annotations

import pytest

from imgclf.config import TrainConfig
from imgclf.errors import DataError
from imgclf.runs import (
    RunFiles,
    check_run_dir,
    create_run_dir,
    library_versions,
    read_config,
    read_json,
    require_trained,
    run_status,
    write_config,
    write_json,
    write_state,
)


def test_create_run_dir_never_reuses_a_name(tmp_path):
    out = tmp_path / "runs"
    first = create_run_dir(out, "pets")
    (first / "marker").write_text("keep me")
    second = create_run_dir(out, "pets")
    third = create_run_dir(out, "pets")
    assert [p.name for p in (first, second, third)] == ["pets", "pets2", "pets3"]
    assert (first / "marker").read_text() == "keep me"
    assert list(second.iterdir()) == []


def test_create_run_dir_rejects_a_file_as_out(tmp_path):
    out = tmp_path / "runs"
    out.write_text("x")
    with pytest.raises(DataError, match=r"output path '.*runs' is a file"):
        create_run_dir(out, "pets")


def test_config_round_trip(tmp_path):
    cfg = TrainConfig(
        data="/data/pets", model="cnn", image_size=64, epochs=3, fine_tune="none", name="x"
    )
    write_config(tmp_path / RunFiles.CONFIG, cfg)
    assert read_config(tmp_path / RunFiles.CONFIG) == cfg


def test_json_round_trip_keeps_unicode(tmp_path):
    write_json(tmp_path / "c.json", ["chat", "hündin", "狐"])
    assert "hündin" in (tmp_path / "c.json").read_text(encoding="utf-8")
    assert read_json(tmp_path / "c.json") == ["chat", "hündin", "狐"]


def test_check_run_dir_missing(tmp_path):
    with pytest.raises(DataError, match=r"run folder '.*nope' does not exist"):
        check_run_dir(tmp_path / "nope")


def test_check_run_dir_names_the_missing_files(tmp_path):
    (tmp_path / RunFiles.CLASSES).write_text("[]")
    with pytest.raises(
        DataError,
        match=r"is not an imgclf run folder \(missing config.yaml, model.keras\); pass a folder "
        r"made by `imgclf train`",
    ):
        check_run_dir(tmp_path)


def test_library_versions():
    versions = library_versions()
    for key in ("python", "platform", "keras", "numpy", "imgclf"):
        assert versions.get(key), key


def fake_run(path, *, model: bool, metrics: bool):
    path.mkdir(parents=True)
    write_config(path / RunFiles.CONFIG, TrainConfig(data="x"))
    write_json(path / RunFiles.CLASSES, ["a", "b"])
    if model:
        (path / RunFiles.MODEL).write_bytes(b"a model")
    if metrics:
        write_json(path / RunFiles.METRICS, {"accuracy": 1.0})
    return path


def test_a_run_says_whether_it_is_complete_interrupted_or_incomplete(tmp_path):
    done = fake_run(tmp_path / "done", model=True, metrics=True)
    assert run_status(done) == "complete" and require_trained(done) == done
    # stopped before anything trained: state.json says so, whether or not model.keras exists
    for name, model in (("untrained", True), ("opened", False)):
        run = fake_run(tmp_path / name, model=model, metrics=model)
        write_state(run, "head", 0, trained=False)
        assert run_status(run) == "incomplete"
        with pytest.raises(DataError) as info:
            require_trained(run)
        message = str(info.value)
        assert "is incomplete" in message and "\n" not in message
        assert message.endswith(f"continue it with `imgclf train --resume {run}`")
    # stopped after the head stage: usable (its best model so far), and resumable
    between = fake_run(tmp_path / "between", model=True, metrics=True)
    write_state(between, "fine_tune", 0, trained=True, head_loss=0.5)
    assert run_status(between) == "interrupted" and require_trained(between) == between
    assert read_json(between / RunFiles.STATE)["head_loss"] == 0.5
    with pytest.raises(DataError, match="does not exist"):
        require_trained(tmp_path / "done" / "nothing")
