"""Shared fixtures: tiny image folders generated with Pillow into tmp_path, and one trained run.

The helpers they use (and test files import) are in :mod:`helpers`.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import make_dataset, save_tiny_backbone, write_bad_files, write_mixed_images

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins = ["browser"]  # the `page` fixture: Debian's chromium through Playwright

# `make test` hands whole files to pytest-xdist processes (--dist loadfile --no-loadscope-reorder)
# in
# collection order: the longest files (measured: --durations, docs/reliability.md) go first, so that
# none of them starts last and becomes the suite's tail. A file not listed keeps its place after
# them.
LONGEST_FIRST = (
    "test_train.py",
    "test_training_controls.py",
    "test_multiworker_agreement.py",
    "test_explain.py",
    "test_recipe.py",
    "test_integration.py",
    "test_cli.py",
    "test_resume.py",
    "test_faults.py",
    "test_report_browser.py",
    "test_export.py",
    "test_evaluate_run.py",
    "test_lite_backbones.py",
    "test_predict.py",
    "test_ray_predict.py",
    "test_doctests.py",
    "test_api.py",
    "test_choose.py",
    "test_models.py",
    "test_distribution.py",
    "test_mixed_precision.py",
    "test_multi_depth.py",
)


def pytest_collection_modifyitems(items) -> None:
    for item in items:  # a test that opens chromium is a browser test, whoever forgets to say so
        if "chromium_browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(
        key=lambda item: rank.get(item.path.name, len(rank))
    )  # stable: the order within a file stays


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """$IMGCLF_CACHE for the session-scoped fixtures (``trained_run``), which are built before any
    test's own :func:`private_cache`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGCLF_CACHE", str(tmp_path_factory.mktemp("session_cache")))
        yield


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    """Every test's own $IMGCLF_CACHE, ``tmp_path / "cache"``, so that no test reads or writes the
    user's ~/.cache/imgclf (automatic; a test that looks inside the cache asks for it by name)."""
    monkeypatch.setenv("IMGCLF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(name="make_dataset")
def make_dataset_fixture():
    """The :func:`make_dataset` helper, for tests that need their own folder layout."""
    return make_dataset


@pytest.fixture
def flat2(tmp_path) -> Path:
    """DATA/cat, DATA/dog: 10 PNGs each."""
    return make_dataset(tmp_path / "pets", {"cat": 10, "dog": 10})


@pytest.fixture
def flat3(tmp_path) -> Path:
    """DATA/ant, DATA/bee, DATA/cow: 20 JPEGs each."""
    return make_dataset(tmp_path / "bugs", {"ant": 20, "bee": 20, "cow": 20}, fmt="jpg")


@pytest.fixture
def presplit(tmp_path) -> Path:
    """DATA/train, DATA/val, DATA/test, each with cat/ and dog/."""
    root = tmp_path / "presplit"
    make_dataset(root / "train", {"cat": 6, "dog": 6}, seed=1)
    make_dataset(root / "val", {"cat": 2, "dog": 2}, seed=2)
    make_dataset(root / "test", {"cat": 2, "dog": 2}, seed=3)
    return root


@pytest.fixture
def presplit_validation(tmp_path) -> Path:
    """DATA/train and DATA/validation (no test/)."""
    root = tmp_path / "presplit_validation"
    make_dataset(root / "train", {"cat": 5, "dog": 5}, seed=4)
    make_dataset(root / "validation", {"cat": 2, "dog": 2}, seed=5)
    return root


@pytest.fixture
def mixed_images(tmp_path) -> dict[str, Path]:
    """One file per accepted format / colour mode, in one folder."""
    return write_mixed_images(tmp_path / "mixed")


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    """A zero-byte .jpg, a text file named .png, a truncated JPEG and notes.txt, in one folder."""
    return write_bad_files(tmp_path / "bad")


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    """A small pretrained-style backbone file (:func:`helpers.save_tiny_backbone`) for ``model=``:
    the
    two-stage recipe's mechanics without EfficientNet-Lite0's tracing cost."""
    return str(save_tiny_backbone(tmp_path_factory.mktemp("backbone") / "tiny_backbone.keras"))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """ONE tiny run trained once per session (cnn, 3 classes, 32 px) and shared by the
    predict / evaluate / CLI tests. Tests must treat it as read-only (evaluations/ may be added)."""
    import imgclf

    base = tmp_path_factory.mktemp("session")
    data = make_dataset(base / "shapes", {"cat": 20, "dog": 20, "fox": 20}, fmt="jpg", seed=7)
    result = imgclf.train(
        data,
        model="cnn",
        image_size=32,
        epochs=2,
        batch_size=8,
        augment="none",
        out=str(base / "runs"),
        name="shapes",
        verbose=0,
        precise_bn=0,  # probabilities strictly between 0 and 1 (see helpers.train_tiny_run)
    )
    return SimpleNamespace(
        run_dir=result.run_dir, data=data, result=result, classes=["cat", "dog", "fox"], base=base
    )
