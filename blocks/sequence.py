"""Blocks for sequences (rank 2: steps, features): conv1d, lstm, bidirectional_lstm, gru,
transformer_encoder. Recurrent blocks return the whole sequence so they stack; the model head
pools over steps."""

from __future__ import annotations

import keras

from blocks._common import channels, finish
from blocks.registry import Block, register

_DROPOUT = [0.0, 0.1, 0.3]


def conv1d(x, name, filters=32, kernel_size=3, batch_norm=False, dropout=0.0):
    x = keras.layers.Conv1D(int(filters), int(kernel_size), padding="same", use_bias=not batch_norm,
                            name=f"{name}_conv")(x)
    return finish(x, name, batch_norm=batch_norm, activation="relu", dropout=dropout)


def lstm(x, name, units=32, dropout=0.0):
    x = keras.layers.LSTM(int(units), return_sequences=True, name=f"{name}_lstm")(x)
    return finish(x, name, dropout=dropout)


def bidirectional_lstm(x, name, units=32, dropout=0.0):
    """Forward and backward LSTMs, concatenated: the output has 2 * units features."""
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(int(units), return_sequences=True, name=f"{name}_lstm"), name=f"{name}_bidi"
    )(x)
    return finish(x, name, dropout=dropout)


def gru(x, name, units=32, dropout=0.0):
    x = keras.layers.GRU(int(units), return_sequences=True, name=f"{name}_gru")(x)
    return finish(x, name, dropout=dropout)


def transformer_encoder(x, name, num_heads=2, d_model=64, ff_dim=128, dropout=0.0):
    """Post-norm encoder layer: x = LN(x + MHA(x)); x = LN(x + FFN(x)). The input is projected to
    d_model first when its width differs. No positional encoding (add a conv1d before if order matters)."""
    d_model, num_heads = int(d_model), int(num_heads)
    if channels(x) != d_model:
        x = keras.layers.Dense(d_model, name=f"{name}_proj")(x)
    att = keras.layers.MultiHeadAttention(
        num_heads, key_dim=max(1, d_model // num_heads), dropout=float(dropout), name=f"{name}_mha"
    )(x, x)
    if dropout:
        att = keras.layers.Dropout(float(dropout), name=f"{name}_att_dropout")(att)
    x = keras.layers.Add(name=f"{name}_att_add")([x, att])
    x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_att_ln")(x)
    ff = keras.layers.Dense(int(ff_dim), activation="relu", name=f"{name}_ff1")(x)
    ff = keras.layers.Dense(d_model, name=f"{name}_ff2")(ff)
    if dropout:
        ff = keras.layers.Dropout(float(dropout), name=f"{name}_ff_dropout")(ff)
    x = keras.layers.Add(name=f"{name}_ff_add")([x, ff])
    return keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ff_ln")(x)


_R2 = frozenset({2})
_UNITS = [32, 16, 64, 128]
register(Block("conv1d", "conv1d", _R2,
               {"filters": [32, 16, 64, 128], "kernel_size": [3, 5], "batch_norm": [False, True],
                "dropout": _DROPOUT}, conv1d))
register(Block("lstm", "recurrent", _R2, {"units": _UNITS, "dropout": _DROPOUT}, lstm))
register(Block("bidirectional_lstm", "recurrent", _R2, {"units": _UNITS, "dropout": _DROPOUT}, bidirectional_lstm,
               expensive=True))  # two LSTMs, each a sequential loop over the steps
register(Block("gru", "recurrent", _R2, {"units": _UNITS, "dropout": _DROPOUT}, gru))
register(Block("transformer_encoder", "transformer", _R2,
               {"num_heads": [2, 4, 8], "d_model": [64, 16, 32, 128], "ff_dim": [128, 32, 64, 256],
                "dropout": [0.0, 0.1, 0.3]}, transformer_encoder,
               expensive=True))  # attention's cost grows with the square of the steps
