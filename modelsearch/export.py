"""A trial's model on disk: its weights and spec (to rebuild it), and a SavedModel that serves on RAW features.

The serving SavedModel runs the tensorflow-transform graph inside it, so a user sends what the data
held (table cells, encoded images, raw pixels or sequences); it needs the Keras model on the TensorFlow
backend (the model is called inside a tf.function). An ensemble trial is rebuilt from its members
(each a completed trial) and its recorded mixture weights.
"""
from __future__ import annotations

import json
import os

from modelsearch.config import SearchConfig
from modelsearch.label_units import label_scale
from modelsearch.raw_examples import raw_tf_spec
from modelsearch.trialstore import ENSEMBLE, Trial, TrialStore

WEIGHTS_FILE = "weights.weights.h5"
SERVING_DIR = "Format-Serving"  # where TFX's Pusher looks for a SavedModel in a Model artifact
SCHEMA_FILE = "modelsearch_schema.json"  # Preprocess writes it into the transform graph's directory


def read_schema(transform_dir: str) -> dict:
    import tensorflow as tf
    with tf.io.gfile.GFile(os.path.join(transform_dir, SCHEMA_FILE)) as f:
        return json.load(f)


def build(spec: dict, schema: dict, config: SearchConfig):
    import blocks
    blocks.load_user_blocks(config.custom_blocks)
    return blocks.build_model(spec, tuple(schema["input_shape"]), schema["task"])


def build_compiled(spec: dict, schema: dict, config: SearchConfig):
    import blocks
    return blocks.compile_model(build(spec, schema, config), spec, schema["task"])


def load_trial_model(store: TrialStore, trial: Trial, schema: dict, config: SearchConfig):
    """A completed trial's (uncompiled) Keras model with its trained weights."""
    if trial.kind == ENSEMBLE:
        from modelsearch.mixture import ensemble_model
        members = [load_trial_model(store, store.get(i), schema, config) for i in trial.spec["members"]]
        return ensemble_model(members, schema, trial.spec["weights"])
    model = build(trial.spec, schema, config)  # uncompiled: the optimizer state is not wanted
    model.load_weights(os.path.join(trial.model_uri, WEIGHTS_FILE))
    return model


def save_trial_model(model, spec: dict, transform_dir: str, schema: dict, model_dir: str) -> None:
    """Weights and spec (to rebuild it), and the serving SavedModel (raw features in) for the Pusher."""
    import tensorflow as tf
    tf.io.gfile.makedirs(model_dir)
    model.save_weights(os.path.join(model_dir, WEIGHTS_FILE))
    write_spec(spec, model_dir)
    export_serving_model(model, transform_dir, schema, os.path.join(model_dir, SERVING_DIR))


def write_spec(spec: dict, model_dir: str) -> None:
    import tensorflow as tf
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(os.path.join(model_dir, "spec.json"), "w") as f:
        json.dump(spec, f, indent=1)


def export_serving_model(keras_model, transform_dir: str, schema: dict, export_dir: str) -> None:
    """Saves `serving_default`: raw inputs in, predictions out. The inputs are what a user sends: table cells
    (numeric float32 [None], string [None]), encoded PNG / JPEG bytes (string [None]) or raw pixels / a raw
    sequence in the declared shape (float32 [None, *shape]); see raw_examples.raw_spec.

    Inputs are named by the columns' `serving_name` (the column name unless TF rejects it, see schema.py).

    Classification (the model outputs logits): probabilities, class_ids (int64), classes (names).
    Regression: predictions [None], in the label's units (the model predicts the z-scored label: undone here,
    see label_units.py).
    """
    import tensorflow as tf
    import tensorflow_transform as tft

    task = schema["task"]
    columns = schema["columns"]
    module = tf.Module()
    module.model = keras_model
    module.tft_layer = tft.TFTransformOutput(transform_dir).transform_features_layer()
    names = [c.get("serving_name") or c["name"] for c in columns]  # column names, cleaned where TF needs it
    signature = [tf.TensorSpec([None, *shape], dtype, name=name)
                 for (shape, dtype), name in zip(map(raw_tf_spec, columns), names)]
    if task["type"] == "classification":
        module.class_names = tf.constant(task["classes"])
    label_mean, label_std = label_scale(schema)

    @tf.function(input_signature=signature)
    def serve(*raw):
        features = module.tft_layer({c["name"]: value for c, value in zip(columns, raw)})
        outputs = module.model(features["x"], training=False)
        if task["type"] != "classification":
            predictions = tf.reshape(tf.cast(outputs, tf.float32), [-1])
            return {"predictions": predictions * label_std + label_mean}
        class_ids = tf.argmax(outputs, axis=-1, output_type=tf.int64)
        return {"probabilities": tf.nn.softmax(outputs, axis=-1), "class_ids": class_ids,
                "classes": tf.gather(module.class_names, class_ids)}

    tf.saved_model.save(module, export_dir, signatures={"serving_default": serve})
