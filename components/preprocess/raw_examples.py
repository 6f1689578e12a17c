"""The raw held-out test split, as a user would send it to the served model.

Preprocess writes the test rows' RAW values (named by serving input, plus the label) as tf.Examples
under `Raw-test/` in the transformed-examples artifact. Anything that must judge a served model on
the same held-out test (the winner against the last pushed model) reads them back with
`load_raw_split` and scores a SavedModel's `serving_default` with `evaluate_saved_model`.
"""
from __future__ import annotations

import os

import numpy as np

RAW_DIR = "Raw-{split}"
LABEL_KEY = "__label__"


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


def load_raw_split(examples_dir: str, schema: dict, split: str = "test") -> tuple[dict, np.ndarray]:
    """(serving inputs {name: array}, labels) of a raw split; labels are class indices or floats.

    Inputs are what the served model takes: table cells, encoded image bytes, or arrays of the declared shape."""
    import tensorflow as tf

    regression = schema["task"]["type"] == "regression"
    spec = {(c.get("serving_name") or c["name"]): tf.io.FixedLenFeature(*raw_tf_spec(c)) for c in schema["columns"]}
    spec[LABEL_KEY] = tf.io.FixedLenFeature([], tf.float32 if regression else tf.string)
    files = sorted(tf.io.gfile.glob(os.path.join(examples_dir, RAW_DIR.format(split=split), "*.gz")))
    if not files:
        raise FileNotFoundError(f"no raw examples for split {split!r} under {examples_dir}")
    batches = [b for b in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096)
               .map(lambda records: tf.io.parse_example(records, spec)).as_numpy_iterator()]
    columns = {name: np.concatenate([b[name] for b in batches]) for name in spec}
    labels = columns.pop(LABEL_KEY)
    if not regression:
        index = {name: i for i, name in enumerate(schema["task"]["classes"])}
        labels = np.array([index[v.decode("utf-8")] for v in labels], np.int64)
    return columns, labels


def serve(saved_model_dir: str, inputs: dict) -> dict:
    """Calls a SavedModel's serving_default on raw inputs; returns its outputs as numpy."""
    import tensorflow as tf

    signature = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
    return {name: value.numpy() for name, value in outputs.items()}


def evaluate_saved_model(saved_model_dir: str, examples_dir: str, schema: dict, split: str = "test") -> dict:
    """The served model's score on a raw split: {"accuracy"} (classification) or {"mse"} (regression)."""
    inputs, labels = load_raw_split(examples_dir, schema, split)
    outputs = serve(saved_model_dir, inputs)
    if schema["task"]["type"] == "regression":
        return {"mse": float(np.mean((outputs["predictions"] - labels) ** 2))}
    return {"accuracy": float(np.mean(outputs["class_ids"] == labels))}
