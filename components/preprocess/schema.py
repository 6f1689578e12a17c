"""infer_schema: what the data is (input route, columns, fills, vocabularies, task, shapes), before any pipeline.

The schema is a plain JSON-serialisable dict; the executor, the trainers and serving all read it:

    format        csv | image_folder | tfrecord        (the input route: see routes.py)
    kind          tabular | sequence | image           (the model input's kind, see modelsearch/kinds.py)
    input_shape   the model input x's shape, e.g. [64], [40, 1], [8, 8, 1]
    label, task   {"type": "classification", "num_classes", "classes"} or {"type": "regression"}
    columns       the raw features the served model takes, each with its `serving_name`:
                    numeric {fill}, string {fill, vocab_size}      (tables: one entry per column)
                    image   {size: [h, w], channels}               (encoded PNG / JPEG bytes)
                    array   {shape, source_columns?}               (raw values of that shape: pixels, a sequence)
                  an image or array column is the only column.

Here: the checks every route shares (problem type, kind, shape, label); the route infers the rest.
"""
from __future__ import annotations

from common.errors import UserError
from components.preprocess.routes import route_for_path
from modelsearch.kinds import RANK_KINDS, check_kind, parse_shape

PROBLEM_TYPES = ("classification", "regression")


def check_problem_type(problem_type: str | None) -> None:
    if problem_type not in (None, "", *PROBLEM_TYPES):
        raise UserError(f"unknown problem type {problem_type!r}; use one of {', '.join(PROBLEM_TYPES)} "
                        f"or leave it out to infer it from the label")


def detect_format(data_path: str) -> str:
    """Which input route reads `data_path`: "image_folder" (a folder of class folders), "tfrecord"
    (TFRecord files of tf.Examples: a file named *.tfrecord[s][.gz] or a folder of them) or "csv"."""
    return route_for_path(data_path).FORMAT


def infer_schema(data_path: str, label: str | None, problem_type: str | None = None,
                 input_kind: str | None = None, input_shape=None) -> dict:
    """Reads the data and returns the schema dict (see the module docstring).

    `input_kind` (tabular, image, sequence) and `input_shape` ("28,28,1") are the user's declarations;
    left out, they are inferred (see modelsearch/kinds.py). schema["kind"] is the kind of the model's input.
    """
    check_problem_type(problem_type)
    kind, declared = check_kind(input_kind), parse_shape(input_shape)
    route = route_for_path(data_path)
    label = label or route.DEFAULT_LABEL
    if not label:
        raise UserError(f"pass --label, the {route.LABEL_NOUN} to predict")
    schema = route.infer_schema(data_path, label, problem_type, kind, declared)
    return {**schema, "kind": RANK_KINDS[len(schema["input_shape"])]}
