"""Blocks for images (rank 3, channels last). Padding is "same" everywhere, so an 8x8 image never
shrinks to zero: stride-2 blocks halve the size rounding up (1x1 stays 1x1)."""

from __future__ import annotations

import keras

from blocks._common import channels, finish
from blocks.registry import Block, register

_FILTERS = [32, 16, 64, 128]
_TAIL = {"batch_norm": [True, False], "dropout": [0.0, 0.1, 0.3]}


def conv(x, name, filters=32, kernel_size=3, batch_norm=True, dropout=0.0):
    k = int(kernel_size)
    x = keras.layers.Conv2D(int(filters), k, padding="same", use_bias=not batch_norm, name=f"{name}_conv")(x)
    return finish(x, name, batch_norm=batch_norm, activation="relu", dropout=dropout)


def conv_1xk_kx1(x, name, filters=32, kernel_size=3, batch_norm=True, dropout=0.0):
    """A factorised k x k convolution: 1 x k then k x 1."""
    k = int(kernel_size)
    x = keras.layers.Conv2D(int(filters), (1, k), padding="same", name=f"{name}_conv1xk")(x)
    x = keras.layers.Conv2D(int(filters), (k, 1), padding="same", use_bias=not batch_norm,
                            name=f"{name}_convkx1")(x)
    return finish(x, name, batch_norm=batch_norm, activation="relu", dropout=dropout)


def strided_conv(x, name, filters=32, kernel_size=3, batch_norm=True, dropout=0.0):
    """Downsampling convolution (stride 2)."""
    x = keras.layers.Conv2D(int(filters), int(kernel_size), strides=2, padding="same",
                            use_bias=not batch_norm, name=f"{name}_conv")(x)
    return finish(x, name, batch_norm=batch_norm, activation="relu", dropout=dropout)


def resnet_block(x, name, filters=32, dropout=0.0):
    """Two 3x3 conv + BN, plus the input (projected by a 1x1 conv when channels differ)."""
    f = int(filters)
    shortcut = x
    if channels(x) != f:
        shortcut = keras.layers.Conv2D(f, 1, padding="same", use_bias=False, name=f"{name}_proj")(x)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.Activation("relu", name=f"{name}_act1")(y)
    y = keras.layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return finish(y, name, activation="relu", dropout=dropout)


def separable_conv(x, name, filters=32, kernel_size=3, batch_norm=True, dropout=0.0):
    """Depthwise then pointwise. On fewer input channels than filters (a grayscale or RGB image) one spatial
    filter per channel would leave the pointwise stage mixing one to three maps, whatever `filters` says: the
    depthwise stage then makes about `filters` maps (depth multiplier)."""
    multiplier = max(1, int(filters) // channels(x))
    x = keras.layers.SeparableConv2D(int(filters), int(kernel_size), padding="same", depth_multiplier=multiplier,
                                     use_bias=not batch_norm, name=f"{name}_sepconv")(x)
    return finish(x, name, batch_norm=batch_norm, activation="relu", dropout=dropout)


def max_pool(x, name, pool_size=2):
    return keras.layers.MaxPooling2D(int(pool_size), strides=2, padding="same", name=f"{name}_pool")(x)


def avg_pool(x, name, pool_size=2):
    return keras.layers.AveragePooling2D(int(pool_size), strides=2, padding="same", name=f"{name}_pool")(x)


def _sep(x, name, filters, k):
    """NASNet-style separable branch: relu -> separable conv -> BN."""
    x = keras.layers.Activation("relu", name=f"{name}_act")(x)
    x = keras.layers.SeparableConv2D(filters, k, padding="same", use_bias=False, name=f"{name}_sepconv")(x)
    return keras.layers.BatchNormalization(name=f"{name}_bn")(x)


def nasnet_cell(x, name, filters=32, dropout=0.0):
    """A small NASNet-A-like normal cell. The input is first adjusted to `filters` channels with a
    1x1 conv; five branch pairs (separable 3x3 / 5x5, 3x3 avg / max pooling, identity) are each
    combined by addition, concatenated, and projected back to `filters` with a 1x1 conv."""
    f = int(filters)
    h = keras.layers.Conv2D(f, 1, padding="same", use_bias=False, name=f"{name}_adjust")(x)
    h = keras.layers.BatchNormalization(name=f"{name}_adjust_bn")(h)
    p = f"{name}_br"
    avg = keras.layers.AveragePooling2D(3, strides=1, padding="same", name=f"{p}2_avg")(h)
    mx = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{p}3_max")(h)
    pairs = [
        (_sep(h, f"{p}0_sep3", f, 3), h),
        (_sep(h, f"{p}1_sep5", f, 5), _sep(h, f"{p}1_sep3", f, 3)),
        (avg, h),
        (mx, _sep(h, f"{p}3_sep3", f, 3)),
        (_sep(h, f"{p}4_sep5", f, 5), h),
    ]
    outs = [keras.layers.Add(name=f"{p}{i}_add")([a, b]) for i, (a, b) in enumerate(pairs)]
    y = keras.layers.Concatenate(name=f"{name}_concat")(outs)
    y = keras.layers.Activation("relu", name=f"{name}_act")(y)
    y = keras.layers.Conv2D(f, 1, padding="same", use_bias=False, name=f"{name}_project")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_project_bn")(y)
    return finish(y, name, dropout=dropout)


_R3 = frozenset({3})
_CONV = {"filters": _FILTERS, "kernel_size": [3, 5], **_TAIL}
register(Block("conv", "conv", _R3, dict(_CONV), conv))
register(Block("conv_1xk_kx1", "conv", _R3, {"filters": _FILTERS, "kernel_size": [3, 5, 7], **_TAIL}, conv_1xk_kx1))
register(Block("strided_conv", "conv", _R3, dict(_CONV), strided_conv, downsamples=True))
register(Block("resnet_block", "conv", _R3, {"filters": _FILTERS, "dropout": [0.0, 0.1, 0.3]}, resnet_block,
               expensive=True))  # two full-size convolutions and three batch norms, at the input's resolution
register(Block("separable_conv", "conv", _R3, dict(_CONV), separable_conv))
register(Block("max_pool", "pool", _R3, {"pool_size": [2, 3]}, max_pool, downsamples=True))
register(Block("avg_pool", "pool", _R3, {"pool_size": [2, 3]}, avg_pool, downsamples=True))
register(Block("nasnet_cell", "cell", _R3, {"filters": [32, 16, 64], "dropout": [0.0, 0.1, 0.3]}, nasnet_cell,
               expensive=True))  # about 20 layers: seven separable convolutions and their batch norms
