"""An ensemble as one Keras model: members side by side, their outputs mixed by (learnable) weights.

For classification the members' probabilities are averaged and the ensemble outputs their log, so it
is a drop-in "logits" model (softmax(log p) = p): trainers, distillation and serving treat it like any
candidate. For regression the predictions are averaged.

Learned weights are fitted on the validation split, never on train (the members were fitted there, so
their train predictions flatter them) nor on test (only reported). `folds` cuts a split into FOLDS
deterministic folds (example i of the split's fixed read order goes to fold i mod FOLDS), so that the
Ensembler can score weights on examples they were not fitted on (modelsearch/ensembling.py).
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


FOLDS = 2  # folds of the validation split for cross-fitted ensemble weights


def fold_sizes(size: int, count: int = FOLDS) -> list[int]:
    """The examples in each of `count` folds of a split of `size` examples (see folds)."""
    return [len(range(k, size, count)) for k in range(count)]


def folds(data, index: int, size: int, count: int = FOLDS, batch_size: int | None = None):
    """(the other folds, fold `index`) of a batched (x, label) split of `size` examples: example i (in the
    split's read order, which is fixed: sorted files, deterministic interleave) belongs to fold i mod `count`.
    Streamed, rebatched to `batch_size` (default: modelsearch/data.py's EVAL_BATCH)."""
    import math

    import tensorflow as tf

    from modelsearch.data import EVAL_BATCH

    batch_size = batch_size or EVAL_BATCH
    numbered = data.unbatch().enumerate()
    held = fold_sizes(size, count)[index]

    def part(inside, examples: int):
        batches = numbered.filter(inside).map(lambda _, xy: xy).batch(batch_size)
        # Keras then knows an epoch's length (a filtered dataset's is unknown to tf.data).
        return batches.apply(tf.data.experimental.assert_cardinality(math.ceil(examples / batch_size)))

    return (part(lambda i, _: tf.not_equal(i % count, index), size - held),
            part(lambda i, _: tf.equal(i % count, index), held))


def count_examples(data) -> int:
    """The examples of a batched (x, label) dataset, counted in one streamed pass."""
    import tensorflow as tf

    return int(data.reduce(tf.constant(0, tf.int64), lambda n, batch: n + tf.cast(tf.shape(batch[1])[0], tf.int64)))


def learn_weights(members: list, schema: dict, fit_data, epochs: int = 30, seed: int = 0) -> list[float]:
    """Mixture weights fitted to labels on a streamed split (the Ensembler passes validation data); the
    members stay frozen, only the mixture learns."""
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
    model.fit(fit_data, epochs=epochs, verbose=0)
    return model.get_layer("mixture").mixture_weights()
