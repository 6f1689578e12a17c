"""Knowledge distillation: a loss that matches a teacher's outputs besides the true labels.

Keras losses see one target tensor, so the targets are packed: column 0 is the label, the rest are
the teacher's outputs (logits, or the prediction for regression). Written with keras.ops only.

Modes: "mse_logits" (squared error between logits), "soft_ce" / "adaptive" (cross-entropy between
temperature-softened distributions, scaled by T^2 as in Hinton et al.); regression always matches the
teacher's prediction by squared error. loss = (1 - weight) * label loss + weight * teacher term.
"""
from __future__ import annotations

import numpy as np


def pack_targets(y: np.ndarray, teacher_outputs: np.ndarray) -> np.ndarray:
    teacher_outputs = np.asarray(teacher_outputs, np.float32).reshape(len(y), -1)
    return np.concatenate([np.asarray(y, np.float32).reshape(-1, 1), teacher_outputs], axis=1)


def _label_loss(task: dict):
    from keras import ops

    def label_loss(y_true, y_pred):
        if task["type"] == "classification":
            labels = ops.cast(y_true[:, 0], "int32")
            return ops.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
        return ops.square(y_true[:, 0] - ops.reshape(y_pred, (-1,)))

    return label_loss


def distillation_loss(task: dict, mode: str, weight: float, temperature: float):
    from keras import ops

    label_loss = _label_loss(task)
    t = float(temperature)

    def teacher_term(y_true, y_pred):
        teacher = y_true[:, 1:]
        if task["type"] != "classification" or mode == "mse_logits":
            return ops.mean(ops.square(ops.reshape(y_pred, ops.shape(teacher)) - teacher), axis=-1)
        soft = ops.softmax(teacher / t, axis=-1)
        return -ops.sum(soft * ops.log_softmax(y_pred / t, axis=-1), axis=-1) * (t * t)

    def distillation(y_true, y_pred):
        return (1.0 - weight) * label_loss(y_true, y_pred) + weight * teacher_term(y_true, y_pred)

    return distillation


def label_metrics(task: dict) -> list:
    """Metrics on the label column of packed targets: early stopping watches val_label_loss."""
    from keras import ops

    metrics = [_label_loss(task)]
    if task["type"] == "classification":
        def label_accuracy(y_true, y_pred):
            predicted = ops.cast(ops.argmax(y_pred, axis=-1), "float32")
            return ops.cast(ops.equal(predicted, y_true[:, 0]), "float32")
        metrics.append(label_accuracy)
    return metrics


def compile_for_distillation(model, spec: dict, task: dict, distillation: dict):
    from blocks.builder import make_optimizer
    model.compile(optimizer=make_optimizer(spec.get("knobs") or {}),
                  loss=distillation_loss(task, distillation["mode"], float(distillation["weight"]),
                                         float(distillation.get("temperature", 1.0))),
                  metrics=label_metrics(task))
    return model
