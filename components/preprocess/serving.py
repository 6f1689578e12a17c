"""export_serving_model: a SavedModel that serves on RAW features (the transform graph runs inside it).

Needs the Keras model on the TensorFlow backend (it is called inside a tf.function).
"""
from __future__ import annotations


def export_serving_model(keras_model, transform_dir: str, schema: dict, export_dir: str) -> None:
    """Saves `serving_default`: raw inputs in, predictions out. The inputs are what a user sends: table cells
    (numeric float32 [None], string [None]), encoded PNG / JPEG bytes (string [None]) or raw pixels / a raw
    sequence in the declared shape (float32 [None, *shape]); see raw_examples.raw_spec.

    Inputs are named by the columns' `serving_name` (the column name unless TF rejects it, see schema.py).

    Classification (the model outputs logits): probabilities, class_ids (int64), classes (names).
    Regression: predictions [None].
    """
    import tensorflow as tf
    import tensorflow_transform as tft

    from components.preprocess.raw_examples import raw_tf_spec

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

    @tf.function(input_signature=signature)
    def serve(*raw):
        features = module.tft_layer({c["name"]: value for c, value in zip(columns, raw)})
        outputs = module.model(features["x"], training=False)
        if task["type"] != "classification":
            return {"predictions": tf.reshape(tf.cast(outputs, tf.float32), [-1])}
        class_ids = tf.argmax(outputs, axis=-1, output_type=tf.int64)
        return {"probabilities": tf.nn.softmax(outputs, axis=-1), "class_ids": class_ids,
                "classes": tf.gather(module.class_names, class_ids)}

    tf.saved_model.save(module, export_dir, signatures={"serving_default": serve})
