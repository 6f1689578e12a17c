"""Small helpers shared by the block families (batch norm / activation / dropout tails)."""

from __future__ import annotations

import keras


def finish(x, name: str, *, batch_norm: bool = False, activation: str | None = None, dropout: float = 0.0):
    """Optional BatchNormalization, then activation, then Dropout: the usual block tail."""
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if activation:
        x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    if dropout:
        x = keras.layers.Dropout(float(dropout), name=f"{name}_dropout")(x)
    return x


def channels(x) -> int:
    return int(x.shape[-1])
