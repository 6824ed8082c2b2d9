"""The examples in the Python API's docstrings run, as written, in a folder holding ``photos/`` (a
tiny labelled image folder: cat/, dog/, fox/) and ``runs/photos`` (a run trained on it)."""

from __future__ import annotations

import doctest
import importlib
import inspect
import shutil

import numpy as np
import pytest

import imgclf

# the modules whose public functions and methods carry examples
MODULES = [
    "imgclf",
    "imgclf.api",
    "imgclf.run",
    "imgclf.serving.predictor",
    "imgclf.serving.prediction",
    "imgclf.serving.images",
    "imgclf.evaluation.calibration",
]


@pytest.fixture(scope="module")
def doc_folder(trained_run, tmp_path_factory):
    """``photos/`` and ``runs/photos``, copies of the session's tiny data folder and run."""
    base = tmp_path_factory.mktemp("doctest")
    shutil.copytree(trained_run.data, base / "photos")
    shutil.copytree(trained_run.run_dir, base / "runs" / "photos")
    return base


def examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module, name) if t.examples]


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_run(name, doc_folder, monkeypatch):
    from imgclf.run import load_run

    monkeypatch.chdir(doc_folder)
    tests = examples(name)
    assert tests, f"{name} has no examples"
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    for test in tests:
        test.globs.update(imgclf=imgclf, np=np, run=load_run("runs/photos"))
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def public_functions(name: str):
    """``(qualified name, function)`` for each public function of ``name`` and each public method
    of its public classes (defined there, not inherited)."""
    module = importlib.import_module(name)
    for attr in module.__all__:
        obj = getattr(module, attr)
        if getattr(obj, "__module__", None) != name:
            continue
        if inspect.isfunction(obj):
            yield f"{name}.{attr}", obj
        elif inspect.isclass(obj):
            for meth, value in vars(obj).items():
                if inspect.isfunction(value) and not meth.startswith("_"):
                    yield f"{name}.{attr}.{meth}", value


@pytest.mark.parametrize("name", ["imgclf", "imgclf.run", "imgclf.serving.predictor"])
def test_every_public_function_has_args_returns_and_an_example(name):
    missing = []
    for qualname, func in public_functions(name):
        doc, signature = func.__doc__ or "", inspect.signature(func)
        needs = [">>>"]
        if [p for p in signature.parameters if p != "self"]:
            needs.append("Args:")
        if signature.return_annotation not in ("None", None):
            needs.append("Returns:")
        missing += [f"{qualname}: no {word}" for word in needs if word not in doc]
    assert not missing, missing
