"""An ensemble as one Keras model: members side by side, their outputs mixed by (learnable) weights.

For classification the members' probabilities are averaged and the ensemble outputs their log, so it
is a drop-in "logits" model (softmax(log p) = p): trainers, distillation and serving treat it like any
candidate. For regression the predictions are averaged.
"""
from __future__ import annotations

import numpy as np


def _mixture_layer():
    import keras
    from keras import ops

    class MemberMixture(keras.layers.Layer):
        """sum_i softmax(w)_i * member_i; w starts at log(weights)."""

        def __init__(self, weights, classification: bool, **kwargs):
            super().__init__(**kwargs)
            self.initial = [float(w) for w in weights]
            self.classification = classification

        def build(self, input_shape):
            start = np.log(np.maximum(np.asarray(self.initial, "float32"), 1e-6))
            self.mix_logits = self.add_weight(shape=(len(self.initial),), name="mix_logits",
                                              initializer=keras.initializers.Constant(start))

        def call(self, outputs):
            weights = ops.softmax(self.mix_logits)
            parts = [ops.softmax(o, axis=-1) if self.classification else o for o in outputs]
            mixed = ops.sum(ops.stack(parts, axis=-1) * weights, axis=-1)
            return ops.log(mixed + 1e-7) if self.classification else mixed

        def mixture_weights(self) -> list[float]:
            return [float(w) for w in ops.convert_to_numpy(ops.softmax(self.mix_logits))]

    return MemberMixture


def ensemble_model(members: list, schema: dict, weights: list[float]):
    """One Keras model averaging `members` (Keras models on the same input) with `weights`."""
    import keras

    inputs = keras.Input(shape=tuple(schema["input_shape"]), name="x")
    # Members are re-wrapped under unique names: every candidate model is called "candidate".
    outputs = [keras.Model(m.input, m.output, name=f"member_{i}")(inputs) for i, m in enumerate(members)]
    mixture = _mixture_layer()(weights, schema["task"]["type"] == "classification", name="mixture")
    return keras.Model(inputs, mixture(outputs), name="ensemble")


def learn_weights(members: list, schema: dict, train_data, epochs: int = 30, seed: int = 0) -> list[float]:
    """Mixture weights fitted to labels on a streamed split; the members stay frozen, only the mixture learns."""
    import keras

    keras.utils.set_random_seed(seed)
    n = len(members)
    model = ensemble_model(members, schema, [1.0 / n] * n)
    for layer in model.layers:
        layer.trainable = layer.name == "mixture"
    classification = schema["task"]["type"] == "classification"
    loss = (keras.losses.SparseCategoricalCrossentropy(from_logits=True) if classification
            else keras.losses.MeanSquaredError())
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    model.fit(train_data, epochs=epochs, verbose=0)
    return model.get_layer("mixture").mixture_weights()
