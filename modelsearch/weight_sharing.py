"""Weight sharing: a child starts from its parent's weights wherever layer name and shape match.

Blocks name their layers by position and block name (b0_dense_..., b1_conv_...), so a child that
appends a block to its parent, or changes a knob, inherits every tensor of the layers they share.
"""
from __future__ import annotations


def copy_matching_weights(child, parent) -> int:
    """Copies each parent weight whose layer name and shape match into `child`; returns how many."""
    parent_layers = {layer.name: layer for layer in parent.layers}
    copied = 0
    for layer in child.layers:
        source = parent_layers.get(layer.name)
        if source is None:
            continue
        for target, value in zip(layer.weights, source.weights):
            if tuple(target.shape) == tuple(value.shape):
                target.assign(value.numpy() if hasattr(value, "numpy") else value)
                copied += 1
    return copied
