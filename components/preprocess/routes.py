"""The input routes and how one is picked: by `detect` for a data path, by schema["format"] afterwards.

Every route is one module with the same interface:

    FORMAT          its schema["format"]: csv | image_folder | tfrecord
    DEFAULT_LABEL   the label's name when --label is left out (None: --label is required)
    LABEL_NOUN      what --label names in its data ("column", "feature"), for the error without one
    detect(path) -> bool
    infer_schema(path, label, problem_type, kind, declared_shape) -> the schema dict, without "kind"
    source(pipeline, schema, data_path, example_files) -> (PCollection of keys, parse: key -> raw row dict)

A key is what the split hashes (a CSV line, an image's path inside its folder, a serialized tf.Example);
a raw row maps each schema column's name, and the label's, to its raw value (float, bytes or list of floats).
Routes share helpers through leaf modules (values, images, shaped_table) and never import each other.
Every route reads its data through tf.io.gfile: a local path and a gs:// URI alike.
"""
from __future__ import annotations

from common.errors import UserError, first_line
from components.preprocess import csv_table, image_folder, tfrecords

ROUTES = (tfrecords, image_folder, csv_table)  # the order detect tries: csv_table takes any file, so it is last
_BY_FORMAT = {route.FORMAT: route for route in ROUTES}


def route_for_path(data_path: str):
    """The route that reads `data_path`; errors say which data each route takes."""
    import tensorflow as tf

    try:
        exists = tf.io.gfile.exists(data_path)
    except tf.errors.OpError as e:  # e.g. no access to the bucket
        raise UserError(f"data {data_path} cannot be read ({first_line(e)}); check the path and your access to "
                        "it") from None
    if not exists:
        raise UserError(f"data {data_path} does not exist; pass a CSV file with a header row, a folder of class "
                        f"folders of images, or TFRecord files")
    for route in ROUTES:
        if route.detect(data_path):
            return route
    raise UserError(f"{data_path} is a folder, not a file, and holds neither class folders of images (one "
                    f"sub-folder per class) nor TFRecord files (*.tfrecord, *.tfrecord.gz); pass a CSV file, "
                    f"an image folder or TFRecord files")


def route_for_schema(schema: dict):
    """The route that inferred `schema` (its "format")."""
    return _BY_FORMAT[schema["format"]]
