"""The ``--time`` planner (imgclf.training.budget): a pure function of measured rates, data size and
budget, tested without training anything. The real run with a budget is in
test_training_controls.py."""

from __future__ import annotations

import pytest

from imgclf.data.scan import ImageItem
from imgclf.training.budget import (
    FILL,
    MIN_TRAIN_PER_CLASS,
    REPORT_SECONDS,
    BudgetPlan,
    Rates,
    budget_image_size,
    plan_budget,
    reserve_seconds,
    stratified_subset,
)

# Lite0 at 128 px on a quiet 2-core machine: ~5 ms to the cut, ~2 ms above it
QUIET = Rates.measured(0.005, 0.002, cached=True)


def plan(left_s, n_train=1443, n_val=411, n_test=208, rates=QUIET, **kw):
    args = {"views": 2, "head_epochs": 30, "fine_tune_epochs": 8, **kw}
    return plan_budget(left_s, left_s, n_train, n_val, n_test, 10, rates, **args)


def spent(p: BudgetPlan) -> float:
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
    assert p.head_epochs == 30  # on 100 images the head stage costs nothing: it keeps its epochs


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
        floor = p.train_images == MIN_TRAIN_PER_CLASS * 10 and "overruns" in p.note
        assert spent(p) <= left or floor  # over only at the smallest subsample, and it says so


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


def test_slowdown_is_a_factor_from_1_to_4_and_ignores_niced_work(monkeypatch):
    from imgclf.training import planning

    stats = iter(
        [(100.0, 400.0), (100.5, 402.0)]
    )  # others used 0.5 of 2 CPU-seconds: a quarter of the machine
    monkeypatch.setattr(planning, "_cpu_times", lambda: next(stats))
    monkeypatch.setattr(planning.time, "process_time", lambda: 0.0)
    assert planning.slowdown(sample_s=0) == pytest.approx(1 / 0.75)
    monkeypatch.setattr(
        planning, "_cpu_times", lambda: None
    )  # no /proc/stat: the load average per core
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    for load, factor in ((3.0, 1.5), (0.5, 1.0), (20.0, 4.0)):  # runnable per core, from 1 to 4
        monkeypatch.setattr("os.getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert planning.slowdown(sample_s=0) == pytest.approx(factor)
    line = "cpu  1000 5000 300 8000 10 0 5 0 0 0\n"  # 50 s of nice: not counted as competition
    assert planning._parse_cpu_line(line) == pytest.approx(((1000 + 300 + 5) / 100, 14315 / 100))


def test_a_budget_that_cannot_take_every_image_drops_the_report_when_that_lets_more_in(monkeypatch):
    import time
    from types import SimpleNamespace

    from imgclf.config import TrainConfig
    from imgclf.training import planning

    items = [ImageItem(f"{k}.png", k % 2, "train") for k in range(40)]
    said: list[str] = []
    session = SimpleNamespace(
        cfg=TrainConfig(data="x", time_budget="20s"),
        deadline=time.perf_counter() + 20,
        num_classes=2,
        say=said.append,
    )
    monkeypatch.setattr(planning, "slowdown", lambda: 1.0)
    fits = {True: 10, False: 30}  # training images that fit with and without the report

    def fake_plan(budget_s, left_s, n_train, n_val, n_test, num_classes, rates, *, report_s, **kw):
        n = fits[report_s == planning.report_seconds(True, 1.0)]
        return BudgetPlan(budget_s, left_s, report_s, n, n_train, n_val, n_val, 1, 5, 0, 1.0)

    monkeypatch.setattr(planning, "plan_budget", fake_plan)
    train, _, _ = planning.plan_run(session, 0.01, None, None, items, items[:10], 5, 1, False)
    assert len(train) == 30 and session.cfg.report is False
    assert "no report, so that 30 training images fit instead of 10" in said[0]
    fits[False] = 10  # no gain without the report: it stays
    session.cfg = TrainConfig(data="x", time_budget="20s")
    planning.plan_run(session, 0.01, None, None, items, items[:10], 5, 1, False)
    assert session.cfg.report is True
