"""One file, one answer (issue 18, items 2 and 8): the web app, the CLI, the Python API and
``evaluate`` decode a file through THE decode path (imgclf.data.decode.decode_image, which the
training pipeline runs in the graph) and give the same probabilities; and they refuse the same
files with the scan's words (what ``doctor`` and ``train`` say)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import synthetic_image

from imgclf.cli import main
from imgclf.data.decode import DecodeLog, decode_image
from imgclf.data.pipeline import decoded_dataset
from imgclf.data.scan import ImageItem, scan_folder
from imgclf.serving.app import ServeConfig, create_app
from imgclf.serving.predictor import load_run

pytestmark = pytest.mark.usefixtures("private_cache")


def write_kinds(folder: Path) -> dict[str, Path]:
    """Photo-like files of every route through the decoder, keyed by kind."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    big = synthetic_image(1, rng, (200, 160))  # decoded at 1/4 scale by libjpeg (ratio 4)
    small = synthetic_image(2, rng, (48, 40))
    out = {k: folder / n for k, n in [("jpeg", "photo.jpg"), ("small_jpeg", "small.jpg")]}
    big.save(out["jpeg"], "JPEG", quality=90)
    small.save(out["small_jpeg"], "JPEG", quality=90)
    out["progressive_jpeg"] = folder / "progressive.jpg"
    big.save(out["progressive_jpeg"], "JPEG", quality=85, progressive=True)
    alpha = np.asarray(synthetic_image(0, rng, (64, 48)).convert("RGBA")).copy()
    alpha[..., 3] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]  # transparent on the left
    out["png_alpha"] = folder / "alpha.png"
    Image.fromarray(alpha, "RGBA").save(out["png_alpha"])
    exif = Image.Exif()
    exif[0x0112] = 6  # a viewer rotates it 90°: Pillow's route
    out["exif_rotated_jpeg"] = folder / "rotated.jpg"
    big.save(out["exif_rotated_jpeg"], "JPEG", quality=90, exif=exif)
    out["gray_jpeg"] = folder / "gray.jpg"
    big.convert("L").save(out["gray_jpeg"], "JPEG", quality=90)
    out["gray_png"] = folder / "gray.png"
    small.convert("L").save(out["gray_png"])
    return out


@pytest.fixture(scope="module")
def kinds(tmp_path_factory) -> dict[str, Path]:
    return write_kinds(tmp_path_factory.mktemp("kinds"))


@pytest.mark.parametrize("size", [32, 96])
def test_decode_image_gives_the_pipelines_pixels(kinds, size):
    """The same array from a path, from the file's bytes, and from the training pipeline."""
    items = [ImageItem(str(p), k) for k, p in enumerate(kinds.values())]
    pipeline = [x for x, _ in decoded_dataset(items, size, DecodeLog()).as_numpy_iterator()]
    assert len(pipeline) == len(items)
    for path, pixels in zip(kinds.values(), pipeline, strict=True):
        np.testing.assert_array_equal(decode_image(path, size), pixels, err_msg=path.name)
        np.testing.assert_array_equal(decode_image(path.read_bytes(), size), pixels)


def serve_predictions(run_dir, files: list[Path], top_k: int, engine="keras") -> list[dict]:
    from fastapi.testclient import TestClient

    config = ServeConfig(engine=engine, top_k=top_k, max_files=32)
    with TestClient(create_app(load_run(run_dir, engine), config)) as client:
        upload = [("file", (p.name, p.read_bytes(), "application/octet-stream")) for p in files]
        response = client.post("/predict", files=upload)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def cli_predictions(capsys, run_dir, files: list[Path], top_k: int, engine="keras") -> list[dict]:
    argv = ["predict", run_dir, *files, "--engine", engine, "--format", "json", "-q"]
    assert main([str(a) for a in [*argv, "--top-k", top_k]]) in (0, 1)
    return json.loads(capsys.readouterr().out)


def by_class(top_k: list[dict]) -> dict[str, float]:
    return {t["label"]: t["probability"] for t in top_k}


def answers(run, files: list[Path], capsys, engine: str) -> dict[str, dict]:
    """Front end -> file name -> class -> probability, for the API, ``predict`` and ``serve``."""
    n = len(run.classes)
    cli = cli_predictions(capsys, run.path, files, n, engine)
    return {
        "api": {Path(p.path).name: dict(p.top_k) for p in run.predict(files, top_k=n)},
        "predict": {Path(r["path"]).name: by_class(r["top_k"]) for r in cli},
        "serve": {
            r["filename"]: by_class(r["top_k"])
            for r in serve_predictions(run.path, files, n, engine)
        },
    }


def assert_same(got: dict[str, dict], expected: dict[str, dict], where: str) -> None:
    assert set(got) == set(expected), where
    for name, probs in expected.items():
        for label, q in probs.items():
            assert got[name][label] == pytest.approx(q, abs=1e-5), (name, where, label)


def test_one_file_one_answer_in_serve_predict_the_api_and_evaluate(
    trained_run, kinds, tmp_path, capsys
):
    from imgclf.evaluation.evaluate import score_folder

    files = list(kinds.values())
    run = load_run(trained_run.run_dir, "keras")
    found = answers(run, files, capsys, "keras")
    labelled = tmp_path / "labelled" / trained_run.classes[0]
    labelled.mkdir(parents=True)
    for p in files:
        (labelled / p.name).write_bytes(p.read_bytes())
    scores = score_folder(
        run.model, labelled.parent, run.classes, run.image_size, 8, temperature=run.temperature
    ).scores
    evaluated = {
        Path(p).name: dict(zip(run.classes, q, strict=True))
        for p, q in zip(scores.paths, scores.probs, strict=True)
    }
    assert set(evaluated) == {p.name for p in files}
    for front_end in ("serve", "predict", "evaluate"):
        assert_same({**found, "evaluate": evaluated}[front_end], found["api"], front_end)


def test_one_file_one_answer_on_the_tflite_engine(trained_run, kinds, capsys):
    """The engine `serve` and `predict --engine auto` use: the same answer from every front end
    (evaluation always runs the Keras model)."""
    found = answers(load_run(trained_run.run_dir, "tflite"), list(kinds.values()), capsys, "tflite")
    for front_end in ("serve", "predict"):
        assert_same(found[front_end], found["api"], front_end)


def write_refused(folder: Path) -> dict[str, Path]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = {"empty": folder / "empty.jpg", "tiny": folder / "tiny.png", "text": folder / "text.png"}
    out["empty"].write_bytes(b"")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(out["tiny"])
    out["text"].write_text("this is not a picture\n")
    return out


def test_one_verdict_per_file_in_every_command(trained_run, tmp_path, capsys):
    """A 1x1 image, an empty file and a text file: the scan's reason (doctor, train) is the reason
    predict, the API and serve give, word for word."""
    import imgclf

    data = tmp_path / "data"
    refused = write_refused(data / "cat")
    for cls in ("cat", "dog"):  # a usable image in each class, so the scan has a data set
        (data / cls).mkdir(exist_ok=True)
        good = sorted((trained_run.data / cls).glob("*.jpg"))[0]
        (data / cls / good.name).write_bytes(good.read_bytes())
    scanned = {Path(s.path).name: s.reason for s in scan_folder(data).skipped}
    expected = {p.name: scanned[p.name] for p in refused.values()}
    assert expected["tiny.png"].startswith("too small: 1x1")
    assert expected["empty.jpg"] == "empty file (0 bytes)"
    report = imgclf.doctor(data).format()
    assert all(reason in report for reason in expected.values())

    files = [*refused.values(), good]
    api = {Path(p.path).name: p.error for p in load_run(trained_run.run_dir).predict(files)}
    cli = {
        Path(r["path"]).name: r["error"]
        for r in cli_predictions(capsys, trained_run.run_dir, files, 1)
    }
    web = {r["filename"]: r["error"] for r in serve_predictions(trained_run.run_dir, files, 1)}
    for front_end, got in [("api", api), ("predict", cli), ("serve", web)]:
        assert got == {**expected, good.name: None}, front_end
