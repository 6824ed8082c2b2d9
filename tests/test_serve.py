"""imgclf serve: the JSON API (FastAPI's TestClient), every bad-input case a 4xx that leaves the
server serving, batching of concurrent requests, and the page in headless Chromium on a real
server."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import jpeg_bytes, write_truncated_jpeg
from PIL import Image

from imgclf.serving.app import ServeConfig, create_app
from imgclf.serving.batching import Batcher
from imgclf.serving.predictor import load_run


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run.run_dir)


@pytest.fixture(scope="module")
def client(run):
    from fastapi.testclient import TestClient

    with TestClient(
        create_app(run, ServeConfig(max_upload_mb=0.5, max_megapixels=20, max_files=4, top_k=2))
    ) as c:
        yield c


def image_file(trained_run, cls: str, i: int = 0) -> tuple[str, bytes, str]:
    path = sorted((trained_run.data / cls).glob("*.jpg"))[i]
    return (path.name, path.read_bytes(), "image/jpeg")


def assert_refused(response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for fragment in fragments:
        assert fragment in detail


def assert_still_serving(client, trained_run) -> None:
    r = client.post("/predict", files={"file": image_file(trained_run, "fox")})
    assert r.status_code == 200


def test_predict_one_and_several_images(client, run, trained_run):
    r = client.post("/predict", files={"file": image_file(trained_run, "cat")})
    assert r.status_code == 200
    (p,) = r.json()["predictions"]
    assert p["filename"] == "cat_000.jpg" and p["label"] in run.classes and len(p["top_k"]) == 2
    assert p["top_k"][0] == {"label": p["label"], "probability": p["confidence"]}
    expected = run.predict(trained_run.data / "cat" / "cat_000.jpg")[0]
    assert p["label"] == expected.label and p["confidence"] == pytest.approx(
        expected.confidence, abs=0.02
    )  # the server's engine may be the TFLite copy (same engine: tests/test_one_answer.py)
    files = [("file", image_file(trained_run, c)) for c in ("dog", "fox", "cat")]
    r = client.post("/predict", files=files)
    assert [p["filename"] for p in r.json()["predictions"]] == [
        "dog_000.jpg",
        "fox_000.jpg",
        "cat_000.jpg",
    ]


def test_explain_returns_the_grad_cam_overlay(client, run, trained_run):
    r = client.post("/explain", files={"file": image_file(trained_run, "dog", 1)})
    assert r.status_code == 200, r.text
    body = r.json()
    predicted = client.post("/predict", files={"file": image_file(trained_run, "dog", 1)}).json()[
        "predictions"
    ][0]
    assert body["filename"] == "dog_001.jpg" and body["label"] == predicted["label"]
    assert body["confidence"] == pytest.approx(predicted["confidence"], abs=1e-6)
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))
    assert (
        overlay.format == "PNG" and overlay.mode == "RGB" and overlay.size == (224, 224)
    )  # 32 px run, upscaled
    assert np.asarray(overlay).std() > 1  # not a blank square


def test_health_model_and_openapi(client, run):
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/model").json()
    assert info["classes"] == run.classes and info["image_size"] == 32 and info["model"] == "cnn"
    assert info["engine"] == "tflite"  # auto: the server converted the model once at start-up
    assert info["metrics"]["accuracy"] == pytest.approx(run.metrics.accuracy) and info["version"]
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/predict"]["post"]
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "PredictResponse"
    )
    assert {"413", "415", "422", "400"} <= set(post["responses"])
    for route in ("/predict", "/explain"):  # every refusal and the image types, declared
        operation = schema["paths"][route]["post"]
        for code in ("400", "413", "415", "422"):
            answer = operation["responses"][code]
            assert answer["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
            assert answer["description"] != "Additional Response", (route, code)
        form = operation["requestBody"]["content"]["multipart/form-data"]
        assert "image/jpeg" in form["encoding"]["file"]["contentType"]
        assert "image/png" in form["encoding"]["file"]["contentType"]
    row = schema["components"]["schemas"]["ImagePrediction"]["properties"]
    assert "error" in row and {"type": "null"} in row["label"]["anyOf"]  # a per-file error
    assert "ModelInfo" in schema["components"]["schemas"] and "/health" in schema["paths"]
    explain = schema["paths"]["/explain"]["post"]
    assert explain["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ExplainResponse"
    )
    assert "overlay_png" in schema["components"]["schemas"]["ExplainResponse"]["properties"]


@pytest.mark.parametrize("route", ["/predict", "/explain"])
def test_non_image(client, route, trained_run):
    assert_refused(
        client.post(
            route, files={"file": ("notes.jpg", b"just some text, not a picture", "image/jpeg")}
        ),
        415,
        "notes.jpg",
        "not an image",
    )
    assert_still_serving(client, trained_run)


@pytest.mark.parametrize("route", ["/predict", "/explain"])
def test_truncated_image(client, route, trained_run, tmp_path):
    data = write_truncated_jpeg(tmp_path / "cut.jpg").read_bytes()
    assert_refused(
        client.post(route, files={"file": ("cut.jpg", data, "image/jpeg")}),
        422,
        "'cut.jpg': cannot decode: ",
    )
    assert_still_serving(client, trained_run)


@pytest.mark.parametrize("route", ["/predict", "/explain"])
def test_empty_upload_empty_body_and_missing_field(client, route, trained_run):
    assert_refused(
        client.post(route, files={"file": ("empty.png", b"", "image/png")}), 400, "empty"
    )
    assert_refused(client.post(route), 422, "multipart", "'file'")
    assert_refused(
        client.post(route, files={"picture": image_file(trained_run, "cat")}), 422, "'file'"
    )
    assert_refused(
        client.post(
            route, content=b"", headers={"content-type": "multipart/form-data; boundary=x"}
        ),
        422,
        "'file'",
    )
    assert_still_serving(client, trained_run)


@pytest.mark.parametrize("route", ["/predict", "/explain"])
def test_decompression_bomb(client, route, trained_run):
    buf = io.BytesIO()
    Image.new("1", (20000, 10000)).save(buf, "PNG")  # 200 megapixels in a few hundred kB
    assert len(buf.getvalue()) < 0.5 * 2**20
    assert_refused(
        client.post(route, files={"file": ("bomb.png", buf.getvalue(), "image/png")}),
        413,
        "'bomb.png': decompression bomb",
    )
    assert_still_serving(client, trained_run)


@pytest.mark.parametrize("route", ["/predict", "/explain"])
def test_a_picture_too_small_is_refused_as_the_scan_refuses_it(client, route, trained_run):
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 0, 0)).save(buf, "PNG")
    assert_refused(
        client.post(route, files={"file": ("dot.png", buf.getvalue(), "image/png")}),
        422,
        "'dot.png': too small: 1x1 pixels (minimum side 8)",
    )


def test_over_the_pixel_limit_of_the_server(client, trained_run):
    buf = io.BytesIO()
    Image.new("1", (6000, 4000)).save(buf, "PNG")  # 24 megapixels: no bomb, over this server's 20
    assert_refused(
        client.post("/predict", files={"file": ("wide.png", buf.getvalue(), "image/png")}),
        413,
        "'wide.png': 6000x4000 = 24 megapixels; the server's limit is 20 megapixels",
    )


@pytest.mark.parametrize("route", ["/predict", "/explain"])
def test_upload_over_the_size_limit(client, route, trained_run):
    big = jpeg_bytes(seed=1, size=(1300, 1300))
    assert 1.2 * 2**20 < len(big) < 2 * 2**20  # under the request limit (4 files of 0.5 MB)
    assert_refused(
        client.post(route, files={"file": ("big.jpg", big, "image/jpeg")}),
        413,
        f"'big.jpg': file is {len(big) / 2**20:.1f} MB; the limit is 0.5 MB",  # its real size
    )
    if route == "/predict":
        too_many = [("file", image_file(trained_run, "cat", i)) for i in range(5)]
        assert_refused(client.post(route, files=too_many), 413, "5 images", "limit is 4")
    huge_body = b"x" * (3 * 2**20)
    assert_refused(
        client.post(route, files={"file": ("huge.jpg", huge_body, "image/jpeg")}),
        413,
        "request body",
    )
    assert_still_serving(client, trained_run)


def test_a_cut_off_upload_of_unknown_size_is_said_to_be_over_the_limit():
    from imgclf.serving.uploads import UploadError, check_and_decode

    with pytest.raises(UploadError) as refused:
        check_and_decode("big.jpg", b"x" * (2**20 + 1), 32, 2**20, 10**6, size=None)
    assert refused.value.status == 413
    assert refused.value.message == "'big.jpg': file is over 1.0 MB; the limit is 1.0 MB"


def test_one_bad_file_among_good_ones_gets_its_own_error(client, trained_run):
    files = [
        ("file", image_file(trained_run, "cat")),
        ("file", ("bad.png", b"\x89PNG\r\n\x1a\nbroken", "image/png")),
        ("file", ("empty.jpg", b"", "image/jpeg")),
        ("file", image_file(trained_run, "dog")),
    ]
    r = client.post("/predict", files=files)
    assert r.status_code == 200, r.text  # something was predicted
    rows = r.json()["predictions"]
    assert [p["filename"] for p in rows] == ["cat_000.jpg", "bad.png", "empty.jpg", "dog_000.jpg"]
    assert [p["error"] for p in rows] == [
        None,
        "not an image (unrecognised content)",
        "empty file (0 bytes)",
        None,
    ]
    assert rows[1]["label"] is None and rows[1]["top_k"] == [] and rows[3]["label"]
    alone = client.post("/predict", files={"file": image_file(trained_run, "dog")}).json()
    assert alone["predictions"][0] == rows[3]  # the bad files changed nothing for the others


def test_when_no_file_could_be_predicted_the_first_refusal_answers(client):
    files = [
        ("file", ("empty.jpg", b"", "image/jpeg")),
        ("file", ("notes.png", b"plain text", "image/png")),
    ]
    assert_refused(
        client.post("/predict", files=files),
        400,
        "'empty.jpg': empty file (0 bytes); 'notes.png': not an image (unrecognised content)",
    )


def test_the_batcher_groups_concurrent_requests():
    sizes = []

    def predict(x):
        sizes.append(len(x))
        return np.tile(np.arange(len(x), dtype=float)[:, None], (1, 2))

    async def scenario():
        batcher = Batcher(predict, max_batch=32)
        batcher.start()
        results = await asyncio.gather(
            *[batcher.submit(np.full((k, 2, 2, 3), k, np.uint8)) for k in (1, 2, 1, 3)]
        )
        await batcher.stop()
        return results, batcher

    # in its own thread: once the session's browser fixture has started, Playwright's sync API keeps
    # an
    # event loop running in the main thread, and asyncio.run() refuses to start another there
    with ThreadPoolExecutor(max_workers=1) as pool:
        results, batcher = pool.submit(asyncio.run, scenario()).result()
    assert (
        sizes == [7] and batcher.batches == 1 and batcher.images == 7
    )  # one forward pass for four requests
    assert [r[:, 0].tolist() for r in results] == [
        [0],
        [1, 2],
        [3],
        [4, 5, 6],
    ]  # each gets its own rows


def test_batches_are_padded_to_a_few_shapes():
    from imgclf.serving.batching import bucket_sizes, padded

    assert bucket_sizes(32) == [1, 2, 4, 8, 16, 32] and bucket_sizes(12) == [1, 2, 4, 8, 12]
    seen = []

    def predict(x):
        seen.append(len(x))
        return x.reshape(len(x), -1)[:, :2].astype(float)

    x = np.arange(5 * 12, dtype=np.uint8).reshape(5, 2, 2, 3)
    np.testing.assert_array_equal(padded(predict, x, 32), x.reshape(5, -1)[:, :2])
    assert seen == [8]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(trained_run):
    """``imgclf serve`` as a user starts it, on a free loopback port."""
    yield from serving(trained_run.run_dir)


@pytest.mark.subprocess
def test_the_page_predicts_a_dropped_image(server, page, trained_run, tmp_path):
    page.goto(server + "/")
    assert "shapes" in page.title()
    image = sorted((trained_run.data / "dog").glob("*.jpg"))[0]
    page.set_input_files("#picker", str(image))
    label = page.locator("[data-testid=label]").first
    label.wait_for(timeout=30_000)
    expected = load_run(trained_run.run_dir).predict(image)[0].label
    assert label.inner_text() == expected
    assert page.locator(".row").count() == 3  # top-k bars, one per class of this run
    assert "Predicted 1 image(s)." in page.locator("#status").inner_text()
    assert page.locator("#drop").bounding_box()["width"] > 600  # the drop zone spans the page
    overlay = page.locator("[data-testid=overlay]").first
    overlay.wait_for(timeout=60_000)  # the Grad-CAM overlay, fetched after the bars are shown
    assert overlay.evaluate("img => img.complete && img.naturalWidth") == 224  # it decoded
    assert f"Grad-CAM: {expected}" in page.locator("figcaption").first.inner_text()
    shot = Path(os.environ.get("IMGCLF_SCREENSHOTS", tmp_path)) / "serve_page.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    assert page.errors == []


def test_the_page_escapes_class_names(tmp_path, trained_run):
    import shutil

    from fastapi.testclient import TestClient

    odd = tmp_path / "odd"
    shutil.copytree(trained_run.run_dir, odd)
    (odd / "classes.json").write_text('["<script>alert(1)</script>", "b&b", "c"]')
    with TestClient(create_app(load_run(odd))) as c:
        html = c.get("/").text
    assert (
        "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    )
    assert "b&amp;b" in html


LONG_NAME = "fox_" + "with_a_really_long_descriptive_class_name_" * 3  # no space to break at


@pytest.fixture(scope="module")
def served_run(trained_run, tmp_path_factory) -> Path:
    """The session's run with a very long name for its third class (the page must wrap it)."""
    import csv
    import json
    import shutil

    copy = tmp_path_factory.mktemp("served") / trained_run.run_dir.name
    shutil.copytree(trained_run.run_dir, copy)
    (copy / "classes.json").write_text(json.dumps(["cat", "dog", LONG_NAME]))
    split = copy / "split.csv"  # its labels name the classes too
    rows = list(csv.DictReader(split.open()))
    with split.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(
            {**r, "label": LONG_NAME if r["label"] == "fox" else r["label"]} for r in rows
        )
    return copy


@pytest.fixture(scope="module")
def long_server(served_run):
    """``imgclf serve`` on the run whose third class has a very long name (Keras engine)."""
    yield from serving(served_run, "--engine", "keras")


def serving(run_dir: Path, *flags: str):
    """Start ``imgclf serve RUN_DIR`` on a free loopback port; yield its URL; stop it."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "imgclf", "serve", str(run_dir), "--port", str(port)]
    proc = subprocess.Popen(
        [*command, *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"imgclf serve exited: {proc.stdout.read()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("imgclf serve did not answer /health within 120 s")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.browser
@pytest.mark.subprocess
def test_the_page_lists_results_in_picked_order_and_wraps_long_names(
    long_server, page, served_run, trained_run, tmp_path
):
    foxes = sorted((trained_run.data / "fox").glob("*.jpg"))
    long_one = next(  # a picture the model labels with the long name, for the Grad-CAM caption
        (p.path for p in load_run(served_run, "keras").predict(foxes) if p.label == LONG_NAME), None
    )
    assert long_one is not None, "the session's run never predicts its third class"
    page.goto(long_server + "/")
    picked = [Path(long_one), sorted((trained_run.data / "cat").glob("*.jpg"))[1]]
    picked += [tmp_path / "empty.jpg", sorted((trained_run.data / "dog").glob("*.jpg"))[2]]
    picked[2].write_bytes(b"")
    page.set_input_files("#picker", [str(p) for p in picked])
    page.wait_for_function("!document.querySelector('.pending')", timeout=60_000)
    names = page.locator("[data-testid=result] .name").all_inner_texts()
    assert names == [p.name for p in picked]  # as picked, not as the answers came back
    assert "empty file (0 bytes)" in page.locator("[data-testid=result]").nth(2).inner_text()
    assert "1 of 4 image(s) could not be predicted" in page.locator("#status").inner_text()
    long = page.locator(".row .cls", has_text=LONG_NAME).first
    assert long.inner_text() == LONG_NAME  # every character shown, none cut off
    fits = long.evaluate(
        "e => e.scrollWidth <= e.clientWidth && e.getBoundingClientRect().right <= "
        "e.closest('.result').getBoundingClientRect().right"
    )
    assert fits and long.bounding_box()["height"] > 40  # wrapped over several lines
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=overlay]').length === 3", timeout=60_000
    )
    captions = page.locator("figcaption")
    assert any(LONG_NAME in c for c in captions.all_inner_texts())
    for k in range(captions.count()):  # Grad-CAM captions wrap inside their 140 px figure
        assert captions.nth(k).evaluate("e => e.scrollWidth <= e.closest('figure').clientWidth")
    # the browser logs the refused upload's 400 itself; the page's script raised nothing
    assert [e for e in page.errors if "status of 400" not in e] == []


@pytest.mark.subprocess
def test_the_api_keeps_its_openapi_contract(server, tmp_path):
    """schemathesis generates requests from the live server's OpenAPI schema (a bounded number)
    and checks every answer: no server error, only declared status codes, bodies and content types
    as declared. Its "positive data acceptance" check is left out: no schema can say "bytes that
    decode as an image", so random bytes are rightly refused with a declared 415/422."""
    command = [sys.executable, "-m", "schemathesis.cli", "run", server + "/openapi.json"]
    command += ["--exclude-checks", "positive_data_acceptance", "--max-examples", "40"]
    command += ["--seed", "1", "--workers", "1", "--phases", "examples,coverage,fuzzing"]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "generated" in done.stdout
