"""imgclf predict --on ray (issue 20, part 2): the prediction core as Ray Data actors on one local
Ray cluster (2 CPUs) started once for the module — the same rows as the single-process engine, an
actor killed mid-job retried with no row lost or repeated, a corrupt file as an error row,
``--resume`` and Parquet shards, each block's rows written as it comes (nothing gathered in the
driver) — and the cluster's lifecycle and the missing-Ray error without Ray."""

from __future__ import annotations

import builtins
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import make_dataset, write_truncated_jpeg

from imgclf.cli import main
from imgclf.errors import ConfigError
from imgclf.serving import ray_predict
from imgclf.serving.parquet_output import ParquetShards, open_parquet, read_parquet_paths
from imgclf.serving.ray_predict import CRASH_ENV, ray_cluster

pytest.importorskip("ray", reason="the ray extra: pip install 'imgclf[ray]'")


def predict(capsys, *argv) -> tuple[int, str]:
    code = main(["predict", *map(str, argv)])
    return code, capsys.readouterr().err


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def parquet_rows(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [r for f in sorted(folder.glob("part-*.parquet")) for r in pq.read_table(f).to_pylist()]


@pytest.fixture(scope="module")
def job(tmp_path_factory, trained_run):
    """A copy of the session's tiny run (its TFLite copy stays out of the shared run), 300 tiny
    photos and two bad files, and their rows from the single-process engine."""
    base = tmp_path_factory.mktemp("ray")
    run = shutil.copytree(trained_run.run_dir, base / "run")
    images = make_dataset(base / "images", {"a": 150, "b": 150}, size=(24, 24), fmt="jpg")
    write_truncated_jpeg(images / "a" / "a_075_cut.jpg")  # reads as a JPEG, fails to decode
    (images / "b" / "b_010_text.png").write_text("not a picture\n")  # fails the header check
    local = base / "local.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGCLF_CACHE", str(base / "cache"))
        assert (
            main(
                ["predict", str(run), str(images), "--engine", "tflite", "-q"] + ["-o", str(local)]
            )
            == 0
        )
    return SimpleNamespace(base=base, run=run, images=images, local=local)


@pytest.fixture(scope="module")
def cluster():
    """ONE local Ray cluster of 2 CPUs for the module; the command uses it as it finds it."""
    ray = ray_predict.import_ray()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def crashed_job(job, cluster):
    """The Ray job, writing JSON Lines, with one actor exiting on its second batch."""
    out, marker = job.base / "ray.jsonl", job.base / "crash-marker"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMGCLF_CACHE", str(job.base / "cache"))
        mp.setenv(CRASH_ENV, str(marker))
        argv = ["predict", str(job.run), str(job.images), "--engine", "tflite", "--on", "ray"]
        code = main([*argv, "--batch-size", "16", "-q", "-o", str(out)])
    return SimpleNamespace(code=code, out=out, marker=marker)


@pytest.mark.subprocess
def test_every_row_is_the_single_process_engines_byte_for_byte(job, crashed_job):
    assert crashed_job.code == 0
    assert crashed_job.out.read_bytes() == job.local.read_bytes()
    assert len(jsonl(crashed_job.out)) == 302


@pytest.mark.subprocess
def test_an_actor_killed_mid_job_is_retried_and_no_row_is_lost_or_repeated(job, crashed_job):
    assert crashed_job.marker.exists(), "an actor exited during the job"
    paths = [r["path"] for r in jsonl(crashed_job.out)]
    assert len(paths) == len(set(paths)) == 302
    assert paths == [r["path"] for r in jsonl(job.local)]


@pytest.mark.subprocess
def test_a_corrupt_file_is_a_row_with_its_error_not_a_failed_job(crashed_job):
    errors = {Path(r["path"]).name: r["error"] for r in jsonl(crashed_job.out) if r["error"]}
    assert set(errors) == {"a_075_cut.jpg", "b_010_text.png"}
    assert all(errors.values())


def streaming_watched(ray, monkeypatch) -> list[str]:
    """Events in order: ``batch`` each time Ray Data yields a block's rows to this process,
    ``write`` each time the output writer is given rows; Ray Data's methods that gather a whole
    dataset into this process (or run it to the end before anything is read) fail."""
    events: list[str] = []
    dataset = ray.data.Dataset
    real_batches, real_write = dataset.iter_batches, ParquetShards.write

    def iter_batches(self, *args, **kwargs):
        for batch in real_batches(self, *args, **kwargs):
            events.append("batch")
            yield batch

    def write(self, rows):
        events.append("write")
        real_write(self, rows)

    def gathers(*args, **kwargs):
        raise AssertionError("the driver gathered the whole dataset")

    for name in ("materialize", "take_all", "take", "to_pandas", "to_arrow_refs", "count"):
        monkeypatch.setattr(dataset, name, gathers)
    monkeypatch.setattr(dataset, "iter_batches", iter_batches)
    monkeypatch.setattr(ParquetShards, "write", write)
    return events


@pytest.mark.subprocess
def test_resume_into_parquet_predicts_only_the_rest_writing_rows_as_they_come(
    job, cluster, capsys, monkeypatch
):
    monkeypatch.setenv("IMGCLF_CACHE", str(job.base / "cache"))
    local = jsonl(job.local)
    out = job.base / "shards"
    writer, _ = open_parquet(out, resume=False)
    writer.write(local[:120])
    writer.close()
    events = streaming_watched(cluster, monkeypatch)
    argv = [job.run, job.images, "--engine", "tflite", "--on", "ray", "--format", "parquet"]
    code, err = predict(capsys, *argv, "-o", out, "--resume")
    assert code == 0
    # each block's rows went to the writer before the next block was read: nothing piles up here
    assert events.count("batch") >= 2
    assert events == ["batch", "write"] * events.count("batch")
    assert "120 already done" in err
    assert [f.name for f in sorted(out.glob("*.parquet"))] == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert len(parquet_rows(out)) == 302
    assert parquet_rows(out) == local


def test_each_actor_call_predicts_many_batches_but_every_actor_gets_work():
    assert ray_predict._paths_per_call(1_000_000, 32, 64) == 512  # one tf.data pipeline per call
    assert ray_predict._paths_per_call(300, 16, 2) == 75  # two calls for each of the two actors
    assert ray_predict._paths_per_call(3, 32, 8) == 1


def test_parquet_shards_are_whole_files_and_resume_reads_them_back(tmp_path):
    rows = [
        {"path": f"p{i}.jpg", "label": "cat", "confidence": 0.5, "top_k": [], "error": None}
        for i in range(5)
    ]
    rows[3] = {"path": "bad.jpg", "label": None, "confidence": None, "top_k": [], "error": "cut"}
    writer = ParquetShards(tmp_path, shard_rows=2)
    writer.write(rows)
    writer.close()
    assert [f.name for f in writer.files] == [f"part-0000{i}.parquet" for i in range(3)]
    assert parquet_rows(tmp_path) == rows
    assert read_parquet_paths(tmp_path) == [r["path"] for r in rows]
    with pytest.raises(ConfigError, match="already holds Parquet files; pass --resume"):
        open_parquet(tmp_path, resume=False)
    writer, done = open_parquet(tmp_path, resume=True)
    assert done == {r["path"] for r in rows} and writer._next == 3


def test_parquet_needs_an_output_folder(capsys, trained_run, tmp_path):
    code, err = predict(capsys, trained_run.run_dir, trained_run.data, "--format", "parquet")
    assert code != 0
    assert "--format parquet writes a folder of files; pass --output DIR" in err


class FakeRay:
    """What ray_cluster calls on the ``ray`` module, recorded."""

    def __init__(self, fail: Exception | None = None):
        self.calls: list[tuple] = []
        self.fail = fail
        context = SimpleNamespace(execution_options=SimpleNamespace())
        self.data = SimpleNamespace(DataContext=SimpleNamespace(get_current=lambda: context))

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs) -> None:
        self.calls.append(("init", kwargs))
        if self.fail is not None:
            raise self.fail

    def shutdown(self) -> None:
        self.calls.append(("shutdown",))


def test_without_an_address_a_local_cluster_of_this_machines_cpus_is_started_and_shut_down(
    monkeypatch,
):
    fake = FakeRay()
    monkeypatch.setattr(ray_predict, "import_ray", lambda: fake)
    monkeypatch.setattr(ray_predict.os, "cpu_count", lambda: 6)
    with ray_cluster(None) as ray:
        assert ray is fake
        (name, kwargs), *_ = fake.calls
        assert kwargs["num_cpus"] == 6 and kwargs["include_dashboard"] is False
        assert kwargs["log_to_driver"] is False
    assert fake.calls[-1] == ("shutdown",)
    assert fake.data.DataContext.get_current().execution_options.preserve_order is True


def test_an_address_joins_that_cluster_and_a_failure_is_one_line(monkeypatch):
    fake = FakeRay()
    monkeypatch.setattr(ray_predict, "import_ray", lambda: fake)
    with ray_cluster("auto"):
        assert fake.calls[0][1]["address"] == "auto" and "num_cpus" not in fake.calls[0][1]
    fake = FakeRay(ConnectionError("Could not find any running Ray instance.\nmore"))
    monkeypatch.setattr(ray_predict, "import_ray", lambda: fake)
    with pytest.raises(ConfigError) as caught:
        with ray_cluster("auto"):
            pass
    assert str(caught.value) == (
        "cannot join the Ray cluster at --address 'auto': Could not find any running Ray instance."
    )


def test_without_ray_installed_the_error_says_how_to_install_it(capsys, monkeypatch, tmp_path):
    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError("No module named 'ray'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    out = tmp_path / "out.csv"
    code, err = predict(capsys, "/nonexistent-run", tmp_path, "--on", "ray", "-o", out)
    assert code != 0
    assert err.strip().splitlines() == [
        "imgclf: error: --on ray needs Ray, which is not installed: pip install 'imgclf[ray]'"
    ]
    assert not out.exists()


def test_address_without_on_ray_is_a_usage_mistake(capsys, trained_run, tmp_path):
    code, err = predict(capsys, trained_run.run_dir, tmp_path, "--address", "auto")
    assert code != 0
    assert "--address 'auto' joins a Ray cluster; pass --on ray too" in err


@pytest.mark.subprocess
def test_importing_imgclf_and_its_predict_command_does_not_import_ray():
    code = (
        "import sys, imgclf, imgclf.cli, imgclf.serving.commands, imgclf.serving.predict_command\n"
        "print('ray' in sys.modules, 'pyarrow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == ["False", "False"]


def test_the_keras_engine_gets_one_actor_per_gpu_and_tflite_stays_on_the_cpus():
    gpu_cluster = {"CPU": 16.0, "GPU": 2.0}
    assert ray_predict.actor_resources(gpu_cluster, "keras") == (2, 1)
    assert ray_predict.actor_resources(gpu_cluster, "tflite") == (16, 0)
    assert ray_predict.actor_resources({"CPU": 2.0}, "keras") == (2, 0)
    assert ray_predict.actor_resources({}, "tflite") == (1, 0)  # a cluster still starting up
