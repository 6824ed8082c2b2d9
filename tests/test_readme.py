"""Every ```python block of README.md runs; the export snippets give what `imgclf predict` gives.

Convention for README.md's code blocks:

- A block fenced ```python runs here, each in a fresh namespace, in a folder laid out as the README
  assumes: ``photos/`` (a tiny labelled folder: cat, dog), ``new_pictures/`` and
  ``demo/new-pictures/`` (100 images of every kind imgclf reads), ``one.jpg``,
  ``another_labelled_folder/`` (labelled like ``photos/``) and ``runs/demo``: a copy of the
  session's tiny trained run (conftest's ``trained_run``) with its ``savedmodel``,
  ``tflite_float32`` and ``onnx`` exports, as ``make demo`` and ``imgclf export`` leave them.
  ``imgclf.train`` keeps every argument a block passes but trains the tiny cnn (32 px, one
  epoch): the calls and options are real, only their cost is not.
- A block that cannot run in a test opens with ```python no-run: server (it starts a web server and
  waits) or ```python no-run: gpu (it needs a GPU). It is still compiled. No other reason is
  accepted, so a broken example cannot be hidden this way.
- Other fences (```, ```bash, …) are shell or text and are not run.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_dataset, orientation_jpeg, synthetic_image

import imgclf
from imgclf.cli import main
from imgclf.serving.export import export_run
from imgclf.serving.predictor import load_run

README = Path(__file__).resolve().parent.parent / "README.md"
NO_RUN_REASONS = {"server", "gpu"}
FORMATS = {"savedmodel": "float32", "tflite": "float32", "onnx": "float32"}
CHEAP_TRAINING = {"model": "cnn", "image_size": 32, "epochs": 1, "batch_size": 8}
_FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str, str]]:
    """``(line, info, code)`` of every ```python block: info is what follows ``python``."""
    return [
        (text[: m.start()].count("\n") + 1, m.group(1).strip(), m.group(2))
        for m in _FENCE.finditer(text)
    ]


def write_pictures(folder: Path, n: int = 100) -> list[Path]:
    """``n`` images of three classes as a user has them: JPEGs small and large, grayscale,
    EXIF-rotated, PNGs with transparency, 16-bit PNGs."""
    rng = np.random.default_rng(42)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        size = [(48, 40), (150, 120), (333, 250), (64, 64)][i % 4]
        im = synthetic_image(i % 3, rng, size)
        kind = i % 10
        if kind < 5:
            path = folder / f"photo_{i:03d}.jpg"
            im.save(path, "JPEG", quality=85 + i % 10)
        elif kind == 5:
            path = folder / f"gray_{i:03d}.jpg"
            im.convert("L").save(path, "JPEG", quality=90)
        elif kind == 6:
            path = orientation_jpeg(folder / f"rotated_{i:03d}.jpg", 6 if i % 2 else 8)
        elif kind in (7, 8):
            rgba = im.convert("RGBA")
            rgba.putalpha(int(rng.integers(0, 256)))
            path = folder / f"alpha_{i:03d}.png"
            rgba.save(path)
        else:
            from PIL import Image

            gray = np.asarray(im.convert("L"), np.uint16) * 257
            path = folder / f"sixteen_{i:03d}.png"
            Image.fromarray(gray).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def readme_folder(trained_run, tmp_path_factory) -> Path:
    """The folder the README's blocks run in (see the module's docstring)."""
    base = tmp_path_factory.mktemp("readme")
    run = base / "runs" / "demo"
    shutil.copytree(
        trained_run.run_dir, run, ignore=shutil.ignore_patterns("engines", "exports", "evaluations")
    )
    for fmt, precision in FORMATS.items():
        assert export_run(load_run(run), fmt, precision).good
    pictures = write_pictures(base / "demo" / "new-pictures")
    shutil.copytree(base / "demo" / "new-pictures", base / "new_pictures")
    shutil.copyfile(pictures[0], base / "one.jpg")
    make_dataset(base / "photos", {"cat": 10, "dog": 10}, seed=11)
    make_dataset(base / "another_labelled_folder", {"cat": 4, "dog": 4}, seed=12)
    return base


@pytest.fixture
def in_readme_folder(readme_folder, monkeypatch):
    """Run in the README's folder with cheap training; modules a block imports from an export
    folder (``preprocess``) are forgotten afterwards, so the next block imports its own."""
    real_train = imgclf.train

    def cheap_train(*args, **kwargs):
        return real_train(*args, **{**kwargs, **CHEAP_TRAINING})

    monkeypatch.chdir(readme_folder)
    monkeypatch.setattr(imgclf, "train", cheap_train)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield readme_folder
    sys.modules.pop("preprocess", None)


def run_block(code: str, line: int) -> dict:
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, f"README.md:{line}", "exec"), namespace)  # noqa: S102
    sys.modules.pop("preprocess", None)
    return namespace


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_blocks_and_the_extraction_finds_them():
    text = (
        "x\n```python\nprint(1)\n```\n\n```python no-run: server\nrun.serve()\n```\n```\nls\n```\n"
    )
    assert python_blocks(text) == [(2, "", "print(1)\n"), (6, "no-run: server", "run.serve()\n")]
    assert any("runs/demo/exports" in code for _, _, code in BLOCKS)


@pytest.mark.parametrize(("line", "info", "code"), BLOCKS, ids=[f"line{b[0]}" for b in BLOCKS])
def test_every_python_block_of_the_readme_runs(in_readme_folder, line, info, code):
    if info:
        reason = info.removeprefix("no-run:").strip()
        assert info.startswith("no-run:") and reason in NO_RUN_REASONS, (
            f"README.md:{line}: ```python {info}: only 'no-run: server' or 'no-run: gpu' may "
            "keep a block from running"
        )
        compile(code, f"README.md:{line}", "exec")
        return
    run_block(code, line)


def predicted_by_cli(folder: Path, classes: list[str]) -> dict[str, np.ndarray]:
    """``imgclf predict runs/demo demo/new-pictures``: path → probabilities in class order."""
    out = folder / "predictions.json"
    out.unlink(missing_ok=True)
    args = ["predict", "runs/demo", "demo/new-pictures", "--top-k", str(len(classes))]
    assert main([*args, "--output", str(out), "--quiet"]) == 0
    found = {}
    for row in json.loads(out.read_text()):
        pairs = [(e["label"], e["probability"]) if isinstance(e, dict) else e for e in row["top_k"]]
        probs = dict(pairs)
        assert row["label"] == max(probs, key=probs.get)
        found[str(Path(row["path"]).resolve())] = np.array([probs[c] for c in classes])
    return found


def test_the_export_snippets_agree_with_imgclf_predict_on_100_images(in_readme_folder):
    """Run as the README says, each format gives imgclf predict's label for every one of 100 images
    (JPEG small and large, grayscale, EXIF-rotated, PNG with alpha, 16-bit PNG) and its
    probabilities to 1e-3."""
    classes = load_run(in_readme_folder / "runs" / "demo").classes
    expected = predicted_by_cli(in_readme_folder, classes)
    assert len(expected) == 100
    snippets = [(line, code) for line, _, code in BLOCKS if "runs/demo/exports/" in code]
    formats = {re.search(r"runs/demo/exports/(\w+)", code).group(1) for _, code in snippets}
    assert formats == {"savedmodel", "tflite_float32", "onnx"}
    for line, code in snippets:
        ns = run_block(code, line)
        paths = [str(Path(p).resolve()) for p in ns["paths"]]
        assert sorted(paths) == sorted(expected)
        want = np.stack([expected[p] for p in paths])
        got = ns["probs"]
        assert [ns["labels"][i] for i in got.argmax(1)] == [classes[i] for i in want.argmax(1)]
        np.testing.assert_allclose(got, want, atol=1e-3, err_msg=f"README.md:{line}")
