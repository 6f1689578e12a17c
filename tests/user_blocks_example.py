"""User blocks for tests/test_blocks.py: one of each kind a search configuration can name."""

import keras


def double_dense(x, units=16, name="double_dense"):
    """kind "function": takes the name prefix so its layer names are deterministic."""
    x = keras.layers.Dense(units, activation="relu", name=f"{name}_a")(x)
    return keras.layers.Dense(units, activation="relu", name=f"{name}_b")(x)


def plain_function(x, units=8):
    """kind "function" without a name parameter."""
    return keras.layers.Dense(units)(x)


def to_vector(x):
    """A rank-changing function block (out_rank 1)."""
    return keras.layers.Flatten()(x)


class Scale(keras.layers.Layer):
    """kind "layer": multiplies by a learned per-feature scale."""

    def __init__(self, init=1.0, **kwargs):
        super().__init__(**kwargs)
        self.init = init

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer=keras.initializers.Constant(self.init))

    def call(self, x):
        return x * self.scale


def tiny_cnn(input_shape, include_top=False, weights=None, filters=4):
    """kind "network": a network constructor with the keras.applications signature."""
    return keras.Sequential(
        [keras.Input(shape=input_shape), keras.layers.Conv2D(filters, 3, padding="same", activation="relu")],
        name="tiny_cnn",
    )


def broken(x):
    raise ValueError("boom")


NOT_CALLABLE = 3


def exits(x):
    """A block whose code ends the process (tests/test_trial_outcomes.py): the trial must be recorded anyway."""
    import sys
    sys.exit(3)
