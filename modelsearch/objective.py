"""What the search maximises: the validation metric alone, or traded against size and serving latency.

A pure module: metrics and costs in, one number out (recorded as metrics["objective"]; every ranking, from
the beam to the push, reads that number). The config section `objective`:

    {"max_params": null, "max_latency_ms": null, "constraint": "soft", "weight": -0.07}

`max_params` is a target for the parameter count, `max_latency_ms` one for the serving latency (the exported
SavedModel called on one raw example, batch 1, on the machine that trained it: modelsearch/latency.py). With
no target the objective is the validation metric as it always was: val_accuracy for classification, minus
val_loss for regression (higher is better either way). With targets, each cost that has one gives a ratio
r = cost / target (a latency target is skipped for a model whose latency was not measured):

- soft (MnasNet, Tan et al. 2019, "MnasNet: Platform-Aware Neural Architecture Search for Mobile", eq. 2,
  alpha = beta = weight): classification accuracy * prod r^w; regression -(loss * prod r^-w). With w < 0 a
  model over its target loses, one under it gains, smoothly: at w = -0.07 (the paper's), twice the target
  costs about 5% of the metric (2^-0.07 = 0.953) and half of it gains as much.
- hard: a model at or under every target keeps its plain metric (MnasNet's alpha = 0); one over any target is
  infeasible and ranks below every feasible model. Among infeasible models the metric is penalised by the
  overshoot e = prod max(1, r) (MnasNet's beta = -1), so a search that has found nothing feasible yet still
  moves towards the targets:
    classification: accuracy / e - 1, in [-1, 0): below any feasible accuracy (>= 0);
    regression: -FLOAT32_MAX * (2 + loss * e), below minus any finite loss: Keras computes losses in
    float32, so a finite loss is at most FLOAT32_MAX. (A huge number on purpose: there is no other bound on a
    loss; an infeasible regression trial reads as "about -7e38 or less".)
  `weight` is not used by the hard form.

The raw validation metrics stay in the metrics as they are (early stopping and the report's curves read those).
A regression loss is taken to be >= 0 (mean squared error and its kin).

`pareto_front` is the Pareto front of the validation metric against the parameter count (and the latency,
when measured): the trials no other trial beats on every criterion.
"""
from __future__ import annotations

import math

from common.numbers import is_number

SOFT, HARD = "soft", "hard"
CONSTRAINTS = (SOFT, HARD)
DEFAULTS = {"max_params": None, "max_latency_ms": None, "constraint": SOFT, "weight": -0.07}
FLOAT32_MAX = 3.4028234663852886e38  # the largest finite float32: no finite Keras loss is larger
# (cost key, target key): a trial's costs as value() takes them, each with the setting that targets it.
TARGETS = (("num_params", "max_params"), ("latency_ms", "max_latency_ms"))
MIN_RATIO = 1e-6


def check(settings: dict) -> str | None:
    """What is wrong with an objective section (defaults filled in), or None."""
    params = settings.get("max_params")
    if params is not None and (isinstance(params, bool) or not isinstance(params, int) or params < 1):
        return f"objective.max_params must be a whole number >= 1 (a parameter target) or null, got {params!r}"
    latency = settings.get("max_latency_ms")
    if latency is not None and (not is_number(latency) or latency <= 0):
        return (f"objective.max_latency_ms must be a number of milliseconds > 0 (the serving latency target) or "
                f"null, got {latency!r}")
    if settings.get("constraint") not in CONSTRAINTS:
        return f"objective.constraint must be one of {', '.join(CONSTRAINTS)}, got {settings.get('constraint')!r}"
    weight = settings.get("weight")
    if not is_number(weight) or not -1 <= weight <= 0:
        return (f"objective.weight must be a number between -1 and 0 (the soft penalty's exponent; MnasNet uses "
                f"-0.07), got {weight!r}")
    return None


def measures_latency(settings: dict | None) -> bool:
    """Whether trials must measure their serving latency: only when a latency target is set (it costs a
    SavedModel load and a few calls per trial)."""
    return bool(settings) and settings.get("max_latency_ms") is not None


def quality(metrics: dict) -> float:
    """The plain validation metric, higher is better: val_accuracy, or minus val_loss; a trial recorded with
    neither (a benchmark's) by its objective."""
    if "val_accuracy" in metrics:
        return metrics["val_accuracy"]
    if "val_loss" in metrics:
        return -metrics["val_loss"]
    return metrics.get("objective", -math.inf)


def ratios(num_params: int | None, latency_ms: float | None, settings: dict | None) -> list[float]:
    """cost / target for every cost that has a target and a value (at least MIN_RATIO: a zero cost would
    make a negative power infinite)."""
    costs = {"num_params": num_params, "latency_ms": latency_ms}
    settings = settings or {}
    return [max(MIN_RATIO, costs[cost] / settings[target]) for cost, target in TARGETS
            if settings.get(target) is not None and costs[cost] is not None]


def value(metrics: dict, task_type: str, num_params: int | None, latency_ms: float | None,
          settings: dict | None) -> float:
    """The objective of a trial (higher is better) from its validation metrics and costs, by the settings of
    the `objective` section (None: no targets). See the module docstring for the formulas."""
    classification = task_type == "classification"
    metric = metrics["val_accuracy"] if classification else metrics["val_loss"]
    settings = {**DEFAULTS, **(settings or {})}
    rs = ratios(num_params, latency_ms, settings)
    if settings["constraint"] == SOFT:
        factor = math.prod(r ** settings["weight"] for r in rs)
        return metric * factor if classification else -(metric / factor)
    overshoot = math.prod(max(1.0, r) for r in rs)
    if overshoot <= 1.0:  # feasible: the plain metric
        return metric if classification else -metric
    return metric / overshoot - 1.0 if classification else -FLOAT32_MAX * (2.0 + metric * overshoot)


def feasible(num_params: int | None, latency_ms: float | None, settings: dict | None) -> bool:
    """Whether the costs are at or under every target (what the hard constraint asks)."""
    return all(r <= 1.0 for r in ratios(num_params, latency_ms, settings))


def pareto_front(trials, latency: bool | None = None) -> list:
    """The completed trials (with parameters and a finite validation metric) that no other trial dominates:
    none has as few or fewer parameters, as good or a better validation metric (`quality`) and, with
    `latency`, as low or a lower metrics["latency_ms"], and is strictly better on one. `latency` None: used
    when every such trial has a measured latency. Of trials equal on every criterion the oldest stands for
    them. Ordered by parameters, then best metric first.

    Sorted so that a trial's dominators come before it; a trial dominated by anything is dominated by a trial
    already on the front, so each is compared with the front only."""
    from modelsearch.trialstore import COMPLETED

    points = [t for t in trials if t.state == COMPLETED and t.num_params > 0 and math.isfinite(quality(t.metrics))]
    if latency is None:
        latency = bool(points) and all("latency_ms" in t.metrics for t in points)

    def criteria(t) -> tuple:  # all smaller-is-better
        return (t.num_params, -quality(t.metrics)) + ((t.metrics.get("latency_ms", math.inf),) if latency else ())

    front = []
    for t in sorted(points, key=lambda t: (criteria(t), t.trial_id)):
        c = criteria(t)
        if not any(all(a <= b for a, b in zip(criteria(f), c)) for f in front):
            front.append(t)
    return front
