"""The raw held-out splits (validation and test), as a user would send them to the served model.

Preprocess writes the validation and test rows' RAW values (named by serving input, plus the label) as
tf.Examples under `Raw-validation/` and `Raw-test/` in the transformed-examples artifact. Anything that must
judge a served model (the winner against the last pushed model) scores a SavedModel's `serving_default`
with `evaluate_saved_model`, which streams a split in batches (`raw_batches`): the push decision on
validation, the test scores only reported; `load_raw_split` holds a whole split in memory, for tests.
"""
from __future__ import annotations

import os

import numpy as np

RAW_DIR = "Raw-{split}"
LABEL_KEY = "__label__"
BATCH_SIZE = 1024  # raw examples served at a time when scoring a split


def raw_spec(column: dict) -> tuple[list[int], str]:
    """(shape without the batch axis, "float" | "string") of a column's raw serving input: a table cell is a
    scalar, an encoded image a scalar string, an array its declared shape of floats."""
    if column["kind"] == "array":
        return list(column["shape"]), "float"
    return [], "float" if column["kind"] == "numeric" else "string"


def raw_tf_spec(column: dict):
    """raw_spec with the TensorFlow dtype: (shape without the batch axis, tf.float32 | tf.string)."""
    import tensorflow as tf

    shape, dtype = raw_spec(column)
    return shape, tf.float32 if dtype == "float" else tf.string


def encode_raw(row: dict, schema: dict) -> bytes:
    """One parsed raw row (column name -> float | bytes | list of floats) -> a serialized tf.Example keyed by
    serving name."""
    import tensorflow as tf

    def feature(value, dtype):
        values = value if isinstance(value, list) else [value]
        return (tf.train.Feature(float_list=tf.train.FloatList(value=values)) if dtype == "float"
                else tf.train.Feature(bytes_list=tf.train.BytesList(value=values)))

    features = {(c.get("serving_name") or c["name"]): feature(row[c["name"]], raw_spec(c)[1])
                for c in schema["columns"]}
    features[LABEL_KEY] = feature(row[schema["label"]], "float" if schema["task"]["type"] == "regression" else "string")
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def raw_batches(examples_dir: str, schema: dict, split: str = "test", batch_size: int = BATCH_SIZE):
    """Yields (serving inputs {name: array}, labels) per batch of a raw split; labels are class indices or floats.

    Inputs are what the served model takes: table cells, encoded image bytes, or arrays of the declared shape.
    Read with tf.data batch by batch, so memory holds one batch, not the split."""
    import tensorflow as tf

    regression = schema["task"]["type"] == "regression"
    spec = {(c.get("serving_name") or c["name"]): tf.io.FixedLenFeature(*raw_tf_spec(c)) for c in schema["columns"]}
    spec[LABEL_KEY] = tf.io.FixedLenFeature([], tf.float32 if regression else tf.string)
    files = sorted(tf.io.gfile.glob(os.path.join(examples_dir, RAW_DIR.format(split=split), "*.gz")))
    if not files:
        raise FileNotFoundError(f"no raw examples for split {split!r} under {examples_dir}")
    index = None if regression else {name: i for i, name in enumerate(schema["task"]["classes"])}
    dataset = (tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
               .map(lambda records: tf.io.parse_example(records, spec)))
    for batch in dataset.as_numpy_iterator():
        labels = batch.pop(LABEL_KEY)
        if index is not None:
            labels = np.array([index[v.decode("utf-8")] for v in labels], np.int64)
        yield batch, labels


def load_raw_split(examples_dir: str, schema: dict, split: str = "test") -> tuple[dict, np.ndarray]:
    """A whole raw split in memory: (serving inputs {name: array}, labels), for tests and small checks."""
    batches = list(raw_batches(examples_dir, schema, split))
    inputs = {name: np.concatenate([b[name] for b, _ in batches]) for name in batches[0][0]}
    return inputs, np.concatenate([labels for _, labels in batches])


def serve(saved_model_dir: str, inputs: dict) -> dict:
    """Calls a SavedModel's serving_default on raw inputs; returns its outputs as numpy."""
    import tensorflow as tf

    signature = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
    return {name: value.numpy() for name, value in outputs.items()}


def evaluate_saved_model(saved_model_dir: str, examples_dir: str, schema: dict, split: str = "test",
                         batch_size: int = BATCH_SIZE) -> dict:
    """The served model's score on a raw split: {"accuracy"} (classification) or {"mse"} (regression).

    Streams the split: each batch is served and scored, only the running sums stay in memory."""
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model_dir)  # held: the signature needs its variables alive
    signature = loaded.signatures["serving_default"]
    regression = schema["task"]["type"] == "regression"
    total, count = 0.0, 0
    for inputs, labels in raw_batches(examples_dir, schema, split, batch_size):
        outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
        if regression:
            errors = outputs["predictions"].numpy().astype(np.float64) - labels
            total += float(np.sum(errors ** 2))
        else:
            total += int(np.sum(outputs["class_ids"].numpy() == labels))
        count += len(labels)
    if not count:
        raise ValueError(f"raw split {split!r} under {examples_dir} holds no examples")
    return {"mse" if regression else "accuracy": total / count}
