"""Blocks for feature vectors (rank 1): dense, residual_dense, bottleneck."""

from __future__ import annotations

import keras

from blocks._common import channels, finish
from blocks.registry import Block, register

_TAIL = {"batch_norm": [False, True], "dropout": [0.0, 0.1, 0.3]}


def dense(x, name, units=128, activation="relu", batch_norm=False, dropout=0.0):
    x = keras.layers.Dense(int(units), use_bias=not batch_norm, name=f"{name}_dense")(x)
    return finish(x, name, batch_norm=batch_norm, activation=activation, dropout=dropout)


def residual_dense(x, name, units=128, activation="relu", batch_norm=False, dropout=0.0):
    """Dense -> Dense plus a skip connection (projected by a Dense when the widths differ)."""
    units = int(units)
    shortcut = x
    if channels(x) != units:
        shortcut = keras.layers.Dense(units, use_bias=False, name=f"{name}_proj")(x)
    y = keras.layers.Dense(units, name=f"{name}_dense1")(x)
    if batch_norm:
        y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.Activation(activation, name=f"{name}_act1")(y)
    y = keras.layers.Dense(units, name=f"{name}_dense2")(y)
    if batch_norm:
        y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return finish(y, name, activation=activation, dropout=dropout)


def bottleneck(x, name, units=128, rank=16, activation="relu", batch_norm=False, dropout=0.0):
    """Low-rank dense layer: project down to `rank` (linear), then back up to `units`."""
    x = keras.layers.Dense(int(rank), use_bias=False, name=f"{name}_down")(x)
    x = keras.layers.Dense(int(units), use_bias=not batch_norm, name=f"{name}_up")(x)
    return finish(x, name, batch_norm=batch_norm, activation=activation, dropout=dropout)


_R1 = frozenset({1})
_UNITS = [128, 16, 32, 64, 256, 512]  # 128 stays the default; 16 and 32 are where a search starts
register(Block("dense", "dense", _R1,
               {"units": _UNITS, "activation": ["relu", "gelu", "tanh"], **_TAIL}, dense))
register(Block("residual_dense", "dense", _R1,
               {"units": _UNITS, "activation": ["relu", "gelu"], **_TAIL}, residual_dense))
register(Block("bottleneck", "dense", _R1,
               {"units": _UNITS, "rank": [16, 8, 32], "activation": ["relu", "gelu"], **_TAIL},
               bottleneck))
