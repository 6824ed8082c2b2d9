"""``--time`` for a pretrained backbone: the budget arithmetic (imgclf.training.pretrained_budget, a
pure function of measured rates, data size and budget, tested without training anything), the
machine-load probe (imgclf.training.measure) and the run's frozen plan (imgclf.training.plan). The
real run with a budget is in test_training_controls.py."""

from __future__ import annotations

import pytest

from imgclf.data.scan import ImageItem
from imgclf.training.budget import (
    FILL,
    MIN_TRAIN_PER_CLASS,
    REPORT_SECONDS,
    Rates,
    reserve_seconds,
    stratified_subset,
)
from imgclf.training.pretrained_budget import (
    PretrainedBudget,
    budget_image_size,
    budget_pretrained,
)

# Lite0 at 128 px on a quiet 2-core machine: ~5 ms to the cut, ~2 ms above it
QUIET = Rates.measured(0.005, 0.002, cached=True)


def plan(left_s, n_train=1443, n_val=411, n_test=208, rates=QUIET, **kw):
    args = {"views": 2, "head_epochs": 30, "fine_tune_epochs": 8, **kw}
    return budget_pretrained(left_s, left_s, n_train, n_val, n_test, 10, rates, **args)


def spent(p: PretrainedBudget) -> float:
    return p.planned_s + p.reserve_s


def test_a_generous_budget_gets_the_full_recipe():
    p = plan(3600)
    assert (p.train_images, p.val_images, p.views, p.head_epochs, p.fine_tune_epochs) == (
        1443,
        411,
        2,
        30,
        8,
    )
    assert p.note == ""
    assert (
        "all 1,443 train images, 2 view(s), all 411 val, head 30 epochs, fine-tuning 8 epoch(s)"
        in p.line()
    )


def test_a_budget_too_small_for_fine_tuning_gives_none_and_says_what_it_needs():
    p = plan(45)
    assert p.train_images == 1443 and p.fine_tune_epochs == 0
    assert "no fine-tuning (a fine-tuning epoch needs ~" in p.line()
    assert spent(p) <= 45


def test_fine_tuning_epochs_grow_with_the_budget_and_views_come_last():
    epochs = [plan(s).fine_tune_epochs for s in (50, 60, 80, 200)]
    assert epochs == sorted(epochs) and epochs[0] < epochs[-1] == 8
    assert plan(60).views == 1  # an extra view only once every fine-tuning epoch fits


def test_a_budget_too_small_for_all_images_subsamples_and_keeps_the_reserve():
    p = plan(
        180,
        n_train=14_400,
        n_val=3_600,
        n_test=2_000,
        rates=Rates.measured(0.008, 0.004, cached=True),
    )
    assert MIN_TRAIN_PER_CLASS * 10 <= p.train_images < 14_400 and p.fine_tune_epochs == 0
    assert p.val_images < 3_600 and "(model selection)" in p.line()
    assert p.reserve_s == reserve_seconds(
        2_000, 3_600, 0.012, REPORT_SECONDS
    )  # the test and val are scored whole
    assert spent(p) <= 180  # and the plan fits in what is left after the reserve
    assert p.planned_s <= (180 - p.reserve_s) * FILL + 0.05  # planned_s is rounded to 0.1 s


def test_when_nothing_fits_the_head_still_gets_the_smallest_subsample():
    p = plan(5, n_train=14_400, n_val=3_600, n_test=2_000)
    assert p.train_images == MIN_TRAIN_PER_CLASS * 10 and p.fine_tune_epochs == 0
    assert "even the smallest subsample overruns" in p.note
    # on 100 images the head stage costs next to nothing: it keeps its epochs while time lasts
    assert p.head_epochs >= 5 and p.head_until == 30


def test_a_subsample_says_what_budget_every_image_needs_and_a_full_plan_does_not():
    short, enough = plan(20), plan(600)
    assert short.train_images < 1443 and short.needed_s > 20
    # the budget it names fits every image with the shortest head
    assert (
        plan(short.needed_s).train_images == 1443 and plan(short.needed_s - 1).train_images < 1443
    )
    assert enough.needed_s == 0


def test_no_fine_tuning_asked_means_none_planned():
    p = plan(3600, fine_tune_epochs=0)
    assert p.fine_tune_epochs == 0 and p.note == "" and p.views == 2


def test_the_input_shrinks_only_as_far_as_needed_and_not_below_the_floor():
    n = (14_400, 3_600, 2_000)
    assert budget_image_size(128, 0.002, 600, *n) == 128  # fits as chosen
    size = budget_image_size(128, 0.03, 180, *n)
    assert 32 <= size < 128 and size % 32 == 0
    assert budget_image_size(128, 0.03, 180, *n, floor=96) == 96  # the images' own resolution
    assert budget_image_size(128, 1.0, 10, *n) == 32


def test_stratified_subset_keeps_class_proportions_and_order():
    items = [ImageItem(f"{c}{i}.png", c) for c in range(3) for i in range((1, 2, 7)[c] * 10)]
    sub = stratified_subset(items, 50, seed=0)
    counts = [sum(i.label == c for i in sub) for c in range(3)]
    assert counts == [5, 10, 35]
    assert sub == sorted(sub, key=items.index)
    assert stratified_subset(items, 500, seed=0) == items
    assert stratified_subset(items, 50, seed=0) == sub  # seeded


@pytest.mark.parametrize("left", [20, 45, 90, 180, 600])
def test_the_plan_never_spends_more_than_is_left(left):
    for rates in (
        QUIET,
        Rates.measured(0.03, 0.01, cached=True),
        Rates.measured(0.01, 0.0, cached=False),
    ):
        p = plan(left, rates=rates)
        smallest = p.train_images == MIN_TRAIN_PER_CLASS * 10
        # only the smallest subsample may overrun, and then it says so
        assert spent(p) <= left or (smallest and "overruns" in p.note), p.line()


def test_a_deadline_stops_a_fit_only_after_its_minimum_epochs():
    import time

    from imgclf.training.callbacks import Deadline

    class Model:
        stop_training = False

    for minimum, stops_after in ((0, 1), (3, 3)):
        deadline, model = Deadline(time.perf_counter() - 1, min_epochs=minimum), Model()
        deadline.set_model(model)
        for epoch in range(5):
            deadline.on_epoch_begin(epoch)
            deadline.on_epoch_end(epoch)
            if model.stop_training:
                break
        assert epoch + 1 == stops_after


def test_slowdown_is_a_factor_from_1_to_4_and_counts_niced_work_only_when_niced(monkeypatch):
    from imgclf.training import measure

    stats = iter(
        [(100.0, 400.0), (100.5, 402.0)]
    )  # others used 0.5 of 2 CPU-seconds: a quarter of the machine
    monkeypatch.setattr(measure, "_cpu_times", lambda: next(stats))
    monkeypatch.setattr(measure.time, "process_time", lambda: 0.0)
    assert measure.slowdown(sample_s=0) == pytest.approx(1 / 0.75)
    monkeypatch.setattr(measure, "_cpu_times", lambda: None)  # no /proc/stat: load per core
    monkeypatch.setattr(measure.os, "cpu_count", lambda: 2)
    for load, factor in ((1.0, 1.0), (5.0, 2.5), (20.0, 4.0)):
        monkeypatch.setattr(measure.os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert measure.slowdown(sample_s=0) == factor
    line = "cpu  1000 5000 300 8000 10 0 5 0 0 0\n"  # 50 s of niced work
    # a normal-priority process: niced work yields to it and does not count
    assert measure._parse_cpu_line(line) == pytest.approx(((1000 + 300 + 5) / 100, 14315 / 100))
    # a niced process competes with niced work: it counts
    assert measure._parse_cpu_line(line, niced=True) == pytest.approx((6305 / 100, 14315 / 100))


def test_when_the_head_is_the_last_stage_it_may_use_the_slack_up_to_the_asked_epochs():
    slow_head = Rates.measured(0.005, 0.002, cached=True, slowdown=4.0)
    p = plan(30, n_train=210, n_val=60, n_test=30, rates=slow_head, head_epochs=30)
    assert p.fine_tune_epochs == 0 and p.head_epochs < 30 and p.head_until == 30
    assert f"head {p.head_epochs} epochs (up to 30 while time is left)" in p.line()
    with_fine_tuning = plan(3600, n_train=210, n_val=60, n_test=30)
    assert with_fine_tuning.fine_tune_epochs == 8 and with_fine_tuning.head_until == 0


def _items(n: int, split: str) -> list[ImageItem]:
    return [ImageItem(f"{split}{k}.png", k % 2, split, 40, 40) for k in range(n)]


def _tiny_classifier(size: int = 32):

    from imgclf.models.classifier import build_classifier
    from imgclf.models.registry import get_spec

    return build_classifier(get_spec("cnn"), 2, size, "none", 0)


def test_the_plan_is_frozen_and_config_records_what_will_really_happen(monkeypatch):
    import dataclasses
    import time

    from imgclf.config import TrainConfig
    from imgclf.training import measure
    from imgclf.training import plan as plan_module

    by_split = {"train": _items(40, "train"), "val": _items(10, "val"), "test": _items(6, "test")}
    cfg = TrainConfig(data="x", model="cnn", image_size=32, epochs=25, time_budget="20s")
    monkeypatch.setattr(plan_module, "slowdown", lambda: 1.0)
    # a slow model: decoding 0.01 s an image, its forward pass 0.1 s
    monkeypatch.setattr(measure, "decode_and_forward", lambda *a, **k: (0.01, 0.1))
    said: list[str] = []
    clf = _tiny_classifier()
    deadline = time.perf_counter() + 20
    plan, same = plan_module.plan_run(cfg, clf, by_split, 2, deadline, said.append, True, True)
    assert same is clf and said == [plan.line] and plan.record["line"] == plan.line
    assert 1 <= plan.epochs < 25 and plan.stop_at is not None and plan.stop_at < deadline
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.epochs = 25  # type: ignore[misc]
    assert plan.config(cfg).epochs == plan.epochs  # config.yaml: the epochs that will run
    asked, _ = plan_module.plan_run(cfg, clf, by_split, 2, None, said.append, True, True)
    assert asked.epochs == 25 and asked.line == "" and asked.record == {}


def test_a_budget_that_cannot_take_every_image_drops_the_report_and_config_says_so(monkeypatch):
    from imgclf.config import TrainConfig
    from imgclf.training import pretrained_plan
    from imgclf.training.measure import report_seconds
    from imgclf.training.recipe import Recipe
    from imgclf.training.run_plan import RunPlan

    said: list[str] = []
    cfg = TrainConfig(data="x", time_budget="20s", epochs=8)
    fits = {True: 10, False: 30}  # training images that fit with and without the report

    def fake_budget(budget_s, left_s, n_train, n_val, n_test, n_classes, rates, *, report_s, **kw):
        n = fits[report_s == report_seconds(True, 1.0)]
        return PretrainedBudget(budget_s, left_s, report_s, n, n_train, n_val, n_val, 1, 5, 0, 1.0)

    monkeypatch.setattr(pretrained_plan, "budget_pretrained", fake_budget)
    budget, report, changes = pretrained_plan.choose_report(
        cfg, plan_module_make(fake_budget), 40, said.append
    )
    assert budget.train_images == 30 and report is False and changes == tuple(said)
    assert "no report, so that 30 training images fit instead of 10" in said[0]
    plan = RunPlan(32, Recipe(3, None, None), (), (), 1, 5, 0, report)
    config = plan.config(cfg)
    assert config.report is False and config.fine_tune == "none"  # neither will happen
    fits[False] = 10  # no gain without the report: it stays
    budget, report, changes = pretrained_plan.choose_report(
        cfg, plan_module_make(fake_budget), 40, said.append
    )
    assert report is True and changes == ()


def plan_module_make(fake_budget):
    def make(report: bool):
        from imgclf.training.measure import report_seconds

        return fake_budget(20, 18, 40, 10, 5, 2, None, report_s=report_seconds(report, 1.0))

    return make


def test_what_ran_is_set_against_the_plan_in_one_line_with_the_reason():
    from types import SimpleNamespace

    from imgclf.training.finish import outcome
    from imgclf.training.plan import RunPlan
    from imgclf.training.recipe import Recipe

    plan = RunPlan(96, Recipe(3, None, None), (), (), 1, 30, 3, False, 1.0, 5.0, line="--time …")
    session = SimpleNamespace(
        plan=plan,
        ran={"head": 5},
        stops=["the time ran out in head (slower than planned)"],
        resume=None,
    )
    record, line = outcome(session, interrupted=False)
    assert line == (
        "planned head 30 + fine_tune 3 epochs, ran head 5 + fine_tune 0: "
        "the time ran out in head (slower than planned)"
    )
    assert record["planned_epochs"] == {"head": 30, "fine_tune": 3}
    assert record["ran_epochs"] == {"head": 5, "fine_tune": 0} and record["report"] is False
    session.ran = {"head": 30, "fine_tune": 3}
    assert outcome(session, interrupted=False)[1] == ""  # as planned: nothing to say
    session.ran, session.stops = {"head": 30, "fine_tune": 1}, []
    assert outcome(session, interrupted=True)[1].endswith("ran head 30 + fine_tune 1: Ctrl-C")


def test_a_busy_machine_scales_the_arithmetic_fully_and_the_fixed_costs_by_its_square_root():
    from imgclf.training.budget import (
        FINE_TUNE_START_SECONDS,
        HEAD_EPOCH_SECONDS,
        HEAD_SECONDS_PER_SAMPLE,
    )
    from imgclf.training.measure import report_seconds

    busy = Rates.measured(0.005, 0.002, cached=True, slowdown=4.0)
    assert busy.head == pytest.approx(4 * HEAD_SECONDS_PER_SAMPLE)
    assert busy.head_epoch == pytest.approx(2 * HEAD_EPOCH_SECONDS)
    assert busy.fine_tune_start == pytest.approx(2 * FINE_TUNE_START_SECONDS)
    # saving without a report: 5 s on a quiet machine, 10 s at a slowdown of 4 (not 20 s)
    assert report_seconds(False, 4.0) == pytest.approx(2 * REPORT_SECONDS / 3)
    assert report_seconds(True, 1.0) == REPORT_SECONDS


def test_under_time_the_doctor_examines_a_sample_and_says_so_and_every_image_is_split(
    tmp_path, monkeypatch
):
    from helpers import make_dataset

    from imgclf.config import TrainConfig
    from imgclf.constants import DOCTOR_PROBE_IMAGES
    from imgclf.data.doctor import diagnose
    from imgclf.data.prepare import prepare_training_data
    from imgclf.data.scan import scan_folder

    data = scan_folder(make_dataset(tmp_path / "d", {"a": 25, "b": 25}, size=(16, 16)))
    whole = diagnose(data)
    assert whole.sampled is None and len(whole.facts) == 50
    sampled = diagnose(data, seconds=0.0, seed=1)  # no time beyond the probe
    assert sampled.sampled == (DOCTOR_PROBE_IMAGES, 50)
    assert len(sampled.facts) == len(sampled.labels) == DOCTOR_PROBE_IMAGES
    assert sampled.to_dict()["files"] == 50
    assert "random sample of 32 of 50 images" in sampled.summary()[0]
    monkeypatch.setattr("imgclf.data.prepare.DOCTOR_TIME_SHARE", 0.0)  # the probe only
    cfg = TrainConfig(data=str(data.root), time_budget="1m")
    usable, items, report = prepare_training_data(data, cfg, verbose=0)
    assert report.sampled == (DOCTOR_PROBE_IMAGES, 50)
    assert len(items) == 50 and all(i.split for i in items)  # the split still takes every image
