"""Grad-CAM variants on the planted-patch data of ``tests/test_explain.py``, over several seeds.

For each seed it generates the training set (3 classes, a coloured square of 10 % of the area tells
them apart, a white distractor square in every image), trains the scratch CNN (64 px, 12 epochs) and
EfficientNet-Lite0 (128 px, head only) exactly as the test does, then measures on 30 new images the
median (and lower quartile) share of the heatmap's mass inside the coloured square, for every method
in ``explain.CAM_METHODS`` and a few layers. One line per (model, seed, layer, method).

    PYTHONPATH=$PWD .venv/bin/python bench/bench_gradcam.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CASES = {  # as in tests/test_explain.py
    "cnn": {"size": 64, "per_class": 60, "options": {"epochs": 12, "patience": 12}},
    "efficientnet_lite0": {"size": 128, "per_class": 40, "options": {"fine_tune": "none"}},
}
EXTRA_LAYERS = {"cnn": ["block1_relu"], "efficientnet_lite0": ["block9_add", "block15_project_bn"]}


def _shares(model, images, labels, boxes, layer, method):
    import numpy as np

    from imgclf.reporting.explain import grad_cam

    cams = grad_cam(model, images, labels, layer=layer, method=method)
    out = []
    for cam, (y, x, side) in zip(cams, boxes, strict=True):
        out.append(cam[y : y + side, x : x + side].sum() / max(cam.sum(), 1e-9))
    return np.asarray(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(CASES))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_gradcam_"))
    os.environ["IMGCLF_CACHE"] = str(tmp / "cache")

    import numpy as np
    from test_explain import make_patch_dataset

    import imgclf
    from imgclf.data.decode import load_image
    from imgclf.reporting.explain import CAM_METHODS, cam_layer, split_model

    for seed in args.seeds:
        for name in args.models:
            case = CASES[name]
            data = tmp / f"{name}_{seed}"
            make_patch_dataset(data / "train", case["size"], case["per_class"], seed=seed)
            start = time.perf_counter()
            result = imgclf.train(
                data / "train",
                model=name,
                image_size=case["size"],
                batch_size=16,
                augment="none",
                out=str(data / "runs"),
                verbose=0,
                seed=seed,
                **case["options"],
            )
            seconds = time.perf_counter() - start
            boxes = make_patch_dataset(
                data / "heldout", case["size"], per_class=10, seed=1000 + seed
            )
            run = imgclf.load_run(result.run_dir)
            paths = sorted(boxes)
            images = np.stack([load_image(p, run.image_size) for p in paths])
            labels = [run.classes.index(Path(p).parent.name) for p in paths]
            default = cam_layer(split_model(run.model)[0], run.image_size)
            for layer in [default, *EXTRA_LAYERS[name]]:
                for method in CAM_METHODS:
                    s = _shares(run.model, images, labels, [boxes[p] for p in paths], layer, method)
                    print(
                        f"{name} seed={seed} acc={result.metrics.accuracy:.3f} "
                        f"train_s={seconds:.0f} layer={layer}"
                        f"{'*' if layer == default else ''} method={method} "
                        f"median={np.median(s):.3f} "
                        f"q25={np.quantile(s, 0.25):.3f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
