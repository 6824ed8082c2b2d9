"""A run's plan as a value (:class:`RunPlan`), decided once before training starts by
:func:`imgclf.training.plan.plan_run`, and what ``timings.json`` records of a ``--time`` plan."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from imgclf.config import TrainConfig
from imgclf.data.scan import ImageItem
from imgclf.training.budget import Rates
from imgclf.training.recipe import Recipe

__all__ = ["RESERVE_SECONDS", "RunPlan", "plan_record"]

RESERVE_SECONDS = 8.0  # kept back from a deadline for testing and saving when nothing was measured


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, decided before it trains and not changed afterwards.

    ``epochs`` is the main stage's: fine-tuning for a pretrained backbone (0: none), the one stage
    of a from-scratch model. ``deadline`` is the ``time.perf_counter()`` value at which ``--time``
    runs out (None without it); ``reserve_s`` of it is kept for testing, the report and saving;
    ``stop_at``: when a from-scratch run stops even inside an epoch. ``line`` says a ``--time`` plan
    before training; ``changes`` says, one line each, what it changed from what was asked;
    ``record`` is ``timings.json``'s ``plan``; ``head_features``: what a pretrained run's head
    reads (``last`` or ``multi``, :mod:`imgclf.models.multi_depth`).
    """

    image_size: int
    recipe: Recipe | None
    train_items: tuple[ImageItem, ...]
    val_items: tuple[ImageItem, ...]
    views: int
    head_epochs: int
    epochs: int
    report: bool
    deadline: float | None = None
    reserve_s: float = RESERVE_SECONDS
    stop_at: float | None = None
    line: str = ""
    changes: tuple[str, ...] = ()
    record: dict[str, Any] = field(default_factory=dict)
    head_features: str = "last"

    @property
    def fine_tunes(self) -> bool:
        """Whether a pretrained run's plan has a fine-tuning stage."""
        return self.recipe is not None and self.recipe.first is not None and self.epochs > 0

    def config(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` as the run will really go (what ``config.yaml`` records): the planned input
        size, views, epochs, report and head features; ``fine_tune: none`` when no fine-tuning is
        planned.

        Args:
            cfg: the run's options as asked.
        """
        out = replace(
            cfg,
            image_size=self.image_size,
            views=self.views if self.recipe is not None else cfg.views,
            head_epochs=self.head_epochs,
            report=self.report,
        )
        if self.recipe is not None:
            out = replace(out, head_features=self.head_features)
        if self.recipe is not None and not self.fine_tunes:
            return replace(out, fine_tune="none", fine_tune_from=None)
        return replace(out, epochs=self.epochs) if self.epochs else out


def plan_record(budget, rates: Rates, load: float, image_size: int, changes=()) -> dict[str, Any]:
    """What ``timings.json`` records of a ``--time`` plan, with what it changed from the ask."""
    rates_s = asdict(rates)
    return {
        **budget.to_dict(),
        "rates_s_per_image": rates_s,
        "slowdown": round(load, 2),
        "image_size": image_size,
        "changes": list(changes),
    }
