"""Early stopping across trials: the median stopping rule (Golovin et al. 2017, "Google Vizier", section 3.2.1).

A pure function of learning curves: the running trial's curve so far and the completed search trials' curves
in, a decision out. It never trains and reads nothing: modelsearch/training.py's callback reads the curves
from the trial store and stops the fit when told (the part that decides never trains).

The rule, at the end of epoch e of a running trial:
- it applies from epoch `min_epochs` on, and only once `min_trials` completed trials with a curve are there;
- the reference of a completed trial at epoch e is its running average of the validation objective over
  epochs 1..e (Vizier's definition; a curve shorter than e, e.g. a trial that patience stopped, averages its
  whole curve); the bar is the median of those references;
- the running trial stops if its best validation objective up to epoch e is below the bar by more than
  `margin` (in the objective's units: accuracy, or the loss for regression).

The running average, not the completed trials' best so far, is what makes the rule lenient with slow starters
(a low learning rate, a deep candidate): it carries their early epochs too, so only a curve that stays below
what completed trials typically showed is cut. The validation objective is higher-is-better: val_accuracy for
classification, minus val_loss for regression; a distilled trial's val_loss is its distillation loss, so its
true-label metrics (val_label_accuracy, val_label_loss) are read instead.
"""
from __future__ import annotations

import dataclasses
import math
import statistics

MEDIAN, NONE = "median", "none"
RULES = (MEDIAN, NONE)
# Why these defaults (none is tuned to a dataset):
# - min_epochs 3: the first epochs say more about a candidate's learning rate and warm-up than about where
#   it ends; three epochs are 5% of the default max_epochs (60), so a hopeless trial that would have run all
#   60 (a tiny learning rate never trips patience) costs 3.
# - min_trials 3: the median of fewer completed trials is one trial's value (or the mean of two): one lucky
#   or unlucky trial would set the bar. Three is also the default beam size.
# - margin 0.0: Vizier's rule ("strictly worse than the median"); raise it (e.g. 0.01 accuracy) where the
#   validation split is small and its noise larger.
DEFAULTS = {"rule": MEDIAN, "min_epochs": 3, "min_trials": 3, "margin": 0.0}


def metric(entry: dict, task_type: str) -> str | None:
    """The curve entry's key of the validation metric the rule watches, or None if the entry has none."""
    keys = (("val_label_accuracy", "val_accuracy") if task_type == "classification"
            else ("val_label_loss", "val_loss"))
    return next((k for k in keys if k in entry), None)


def value(entry: dict, task_type: str) -> float | None:
    """The entry's validation objective, higher is better; None when missing or not finite (a NaN is null in
    a recorded curve)."""
    key = metric(entry, task_type)
    v = entry.get(key) if key else None
    if v is None or not math.isfinite(v):
        return None
    return v if task_type == "classification" else -v


def _values(curve: list, epoch: int, task_type: str) -> list[float]:
    """The finite objectives of the curve's entries up to `epoch` (all of them for a shorter curve)."""
    found = (value(e, task_type) for e in curve if e.get("epoch", 0) <= epoch)
    return [v for v in found if v is not None]


def best_so_far(curve: list, epoch: int, task_type: str) -> float | None:
    values = _values(curve, epoch, task_type)
    return max(values) if values else None


def running_average(curve: list, epoch: int, task_type: str) -> float | None:
    values = _values(curve, epoch, task_type)
    return statistics.fmean(values) if values else None


@dataclasses.dataclass(frozen=True)
class Stop:
    """The rule's decision to stop, with what it compared (objective units: higher is better)."""

    epoch: int
    best: float      # the running trial's best objective up to `epoch`
    median: float    # the median of the completed trials' running averages up to `epoch`
    trials: int      # completed trials in the median
    metric: str      # the curve key compared (val_accuracy, val_loss, val_label_accuracy, val_label_loss)

    def reason(self, max_epochs: int | None = None) -> str:
        """One line for the trial's record, in the metric's own units (a loss is shown as a loss)."""
        loss = "loss" in self.metric
        best, median = (-self.best, -self.median) if loss else (self.best, self.median)
        of = f" of {max_epochs}" if max_epochs else ""
        return (f"stopped at epoch {self.epoch}{of} by the median rule: best {self.metric} {best:.4g} "
                f"{'above' if loss else 'below'} the median {median:.4g} of {self.trials} completed trials' "
                f"mean {self.metric} over epochs 1-{self.epoch}")


def check(settings: dict) -> str | None:
    """What is wrong with an early_stopping section (defaults filled in), or None."""
    if settings.get("rule") not in RULES:
        return f"early_stopping.rule must be one of {', '.join(RULES)}, got {settings.get('rule')!r}"
    for key in ("min_epochs", "min_trials"):
        v = settings.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            return f"early_stopping.{key} must be a whole number >= 1, got {v!r}"
    margin = settings.get("margin")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < math.inf:
        return (f"early_stopping.margin must be a number >= 0 (how much worse than the median, in the "
                f"objective's units), got {margin!r}")
    return None


def decide(curve: list, completed: list, settings: dict, task_type: str) -> Stop | None:
    """Whether a running trial stops now: `curve` is its learning curve so far (entries {"epoch", ...}),
    `completed` the curves of the completed search trials it is compared with (same study, same data
    version), `settings` the early_stopping section. A Stop, or None to go on training."""
    if settings.get("rule", MEDIAN) == NONE or not curve:
        return None
    epoch = int(curve[-1].get("epoch", len(curve)))
    if epoch < settings["min_epochs"]:
        return None
    best = best_so_far(curve, epoch, task_type)
    if best is None:  # nothing finite yet: divergence is the recorder's to judge
        return None
    references = [r for r in (running_average(c, epoch, task_type) for c in completed) if r is not None]
    if len(references) < settings["min_trials"]:
        return None
    median = statistics.median(references)
    if best < median - settings["margin"]:
        key = next((metric(e, task_type) for e in reversed(curve) if metric(e, task_type)), "objective")
        return Stop(epoch, best, median, len(references), key)
    return None
