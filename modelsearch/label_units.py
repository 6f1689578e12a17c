"""Regression labels in two units: the model's (z-scored) and the user's (the label's own).

Preprocess trains regression on the label z-scored by the train split's mean and deviation (targets in the
hundreds against a network that starts near zero would take many epochs just to reach their scale, and an
SGD step sized for them diverges); it records both numbers in the schema as "label_scale". The served model
undoes the scaling (modelsearch/export.py), and the trial store's metrics and curves are reported in the
label's units (`in_label_units`), so that users read real squared errors. Classification, and schemas written
before labels were scaled, have no "label_scale": mean 0, deviation 1, nothing changes.
"""
from __future__ import annotations

import math

# A deviation this small relative to the mean is none: rounding noise of a constant label, not a spread.
FLAT = 1e-6


def label_scale(schema: dict) -> tuple[float, float]:
    """(mean, deviation) that map the model's prediction back to the label: label = prediction * std + mean."""
    scale = schema.get("label_scale") if schema["task"]["type"] == "regression" else None
    return (float(scale["mean"]), float(scale["std"])) if scale else (0.0, 1.0)


def deviation(mean: float, variance: float) -> float:
    """The deviation labels are divided by: their own, or 1 for a constant label (dividing by ~0 would blow
    rounding noise up into labels). Preprocess's transform graph applies the same rule."""
    std = math.sqrt(variance) if variance > 0 and math.isfinite(variance) else 0.0
    return 1.0 if std <= FLAT * max(abs(mean), 1.0) else std


def scale_from_moments(count: int, mean: float, variance: float) -> dict:
    """The schema's "label_scale" for labels of this mean and (population) variance."""
    return {"mean": float(mean), "std": deviation(mean, variance)} if count else {"mean": 0.0, "std": 1.0}


def _factor(name: str, std: float) -> float:
    """What a metric (a Keras log key: loss, mae, val_loss, test_mae, val_label_loss ...) is multiplied by.
    Every regression loss is a mean squared error (the distillation loss too: squared errors against labels
    and against the teacher's predictions, both in the model's units), so it scales by std^2; MAE by std."""
    base = name.removeprefix("val_").removeprefix("test_")
    if base == "mae":
        return std
    return std * std if base.endswith("loss") else 1.0


def in_label_units(metrics: dict, schema: dict) -> dict:
    """Metrics of a model trained on scaled labels, in the label's units. A constant factor per key, so
    every comparison of trials on one data version (the objective, the median rule) keeps its order."""
    _, std = label_scale(schema)
    if std == 1.0:
        return dict(metrics)
    return {k: (v * _factor(k, std) if isinstance(v, float) and _factor(k, std) != 1.0 else v)
            for k, v in metrics.items()}
