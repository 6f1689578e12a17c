"""infer_schema: what the data is (input route, columns, fills, vocabularies, task, shapes), before any pipeline.

The schema is a plain JSON-serialisable dict; the executor, the trainers and serving all read it:

    format        csv | image_folder | tfrecord        (the input route: one file per route in this folder)
    kind          tabular | sequence | image           (the model input's kind, see modelsearch/kinds.py)
    input_shape   the model input x's shape, e.g. [64], [40, 1], [8, 8, 1]
    label, task   {"type": "classification", "num_classes", "classes"} or {"type": "regression"}
    columns       the raw features the served model takes, each with its `serving_name`:
                    numeric {fill}, string {fill, vocab_size}      (tables: one entry per column)
                    image   {size: [h, w], channels}               (encoded PNG / JPEG bytes)
                    array   {shape, source_columns?}               (raw values of that shape: pixels, a sequence)
                  an image or array column is the only column.

Parsing rules here and in the executor's line parser agree: a value is missing when it is empty
(after stripping spaces); a column is numeric when every present value is a finite number.
"""
from __future__ import annotations

import csv
import math
import os
import re

from modelsearch.errors import UserError
from modelsearch.kinds import RANK_KINDS, check_kind, parse_shape

MAX_VOCAB = 1000          # one-hot width cap for a string column
MAX_INT_CLASSES = 20      # an integer label with at most this many values is a class label
MIN_ROWS = 10             # fewer rows cannot be split into train / validation / test
PROBLEM_TYPES = ("classification", "regression")


def to_number(value: str) -> float | None:
    """The finite float a CSV field holds, or None (missing, text, nan, inf)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def normalize_label(value: str) -> str:
    """A class label as a string, so that "3", "3.0" and " 3 " are the same class."""
    value = value.strip()
    number = to_number(value)
    if number is None:
        return value
    return str(int(number)) if number.is_integer() else repr(number)


def cell_value(column: dict, text: str):
    """A table cell (stripped text) as the raw value the pipeline feeds TFT: float (fill when missing) or bytes."""
    if column["kind"] == "numeric":
        number = to_number(text)
        return float(column["fill"] if number is None else number)
    return text.encode("utf-8")


def label_value(schema: dict, text: str):
    """The label's raw value: a float (regression) or the class name as bytes."""
    if schema["task"]["type"] == "regression":
        return to_number(text) or 0.0
    return normalize_label(text).encode("utf-8")


def serving_names(names: list[str]) -> list[str]:
    """Input names for the serving signature: a column name where TF accepts it, else a cleaned, unique one."""
    result, used = [], set()
    for name in names:
        clean = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name)
        clean = clean if re.match(r"[A-Za-z0-9.]", clean) else f"f{clean}"
        candidate, k = clean, 1
        while candidate in used:
            k += 1
            candidate = f"{clean}_{k}"
        used.add(candidate)
        result.append(candidate)
    return result


def sorted_classes(values: set[str]) -> list[str]:
    if all(to_number(v) is not None for v in values):
        return sorted(values, key=lambda v: float(v))
    return sorted(values)


def _read_csv(data_path: str):
    import pandas as pd

    if not os.path.exists(data_path):
        raise UserError(f"data file {data_path} does not exist; pass the path of a CSV file with a header row")
    if not os.path.isfile(data_path):
        raise UserError(f"{data_path} is not a file; pass the path of a CSV file with a header row")
    try:
        frame = pd.read_csv(data_path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                            skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"{data_path} is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{data_path} cannot be read as CSV ({first}); pass a UTF-8 comma-separated file "
                        f"with a header row and the same number of fields on every line") from None
    except OSError as e:
        raise UserError(f"{data_path} cannot be read ({e.strerror or e}); check its permissions") from None
    frame = frame.fillna("")  # short rows: missing trailing fields
    with open(data_path, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f), [])
    return frame, header


def infer_task(raw_labels: list[str], label: str, problem_type: str | None) -> dict:
    """The task from the label's raw values (strings): classification with its sorted classes, or regression."""
    missing = sum(1 for v in raw_labels if v == "")
    if missing:
        raise UserError(f"label column {label!r} has {missing} missing values; fill them in or drop those rows")
    numeric_label = all(to_number(v) is not None for v in raw_labels)
    if not problem_type:
        integer_valued = numeric_label and all(float(v).is_integer() for v in raw_labels)
        problem_type = ("classification"
                        if not numeric_label or (integer_valued and len(set(map(float, raw_labels)))
                                                 <= MAX_INT_CLASSES)
                        else "regression")
    if problem_type == "regression":
        if not numeric_label:
            bad = next(v for v in raw_labels if to_number(v) is None)
            raise UserError(f"regression needs a numeric label, but {label!r} has the value {bad!r}; "
                            f"clean the label or use problem type classification")
        return {"type": "regression"}
    classes = sorted_classes({normalize_label(v) for v in raw_labels})
    if len(classes) < 2:
        raise UserError(f"label column {label!r} has only one class ({classes[0]!r}); classification "
                        f"needs at least two: check the label column or the data")
    return {"type": "classification", "num_classes": len(classes), "classes": classes}


def check_problem_type(problem_type: str | None) -> None:
    if problem_type not in (None, "", *PROBLEM_TYPES):
        raise UserError(f"unknown problem type {problem_type!r}; use one of {', '.join(PROBLEM_TYPES)} "
                        f"or leave it out to infer it from the label")


def detect_format(data_path: str) -> str:
    """Which input route reads `data_path`: "image_folder" (a folder of class folders), "tfrecord"
    (TFRecord files of tf.Examples: a file named *.tfrecord[s][.gz] or a folder of them) or "csv"."""
    from components.preprocess import image_folder, tfrecords

    if "://" not in data_path and not os.path.exists(data_path):
        raise UserError(f"data {data_path} does not exist; pass a CSV file with a header row, a folder of class "
                        f"folders of images, or TFRecord files")
    if tfrecords.is_tfrecords(data_path):
        return "tfrecord"
    if image_folder.is_image_folder(data_path):
        return "image_folder"
    if os.path.isdir(data_path):
        raise UserError(f"{data_path} is a folder, not a file, and holds neither class folders of images (one "
                        f"sub-folder per class) nor TFRecord files (*.tfrecord, *.tfrecord.gz); pass a CSV file, "
                        f"an image folder or TFRecord files")
    return "csv"


def infer_schema(data_path: str, label: str | None, problem_type: str | None = None,
                 input_kind: str | None = None, input_shape=None) -> dict:
    """Reads the data and returns the schema dict (see the module docstring of components.preprocess).

    `input_kind` (tabular, image, sequence) and `input_shape` ("28,28,1") are the user's declarations;
    left out, they are inferred (see modelsearch/kinds.py). schema["kind"] is the kind of the model's input.
    """
    from components.preprocess import image_folder, shaped_table, tfrecords

    check_problem_type(problem_type)
    kind, declared = check_kind(input_kind), parse_shape(input_shape)
    route = detect_format(data_path)
    if route != "image_folder" and not label:
        raise UserError(f"pass --label, the {'feature' if route == 'tfrecord' else 'column'} to predict")
    if route == "image_folder":
        schema = image_folder.infer_schema(data_path, label or image_folder.DEFAULT_LABEL, problem_type, kind,
                                           declared)
    elif route == "tfrecord":
        schema = tfrecords.infer_schema(data_path, label, problem_type, kind, declared)
    else:
        schema = shaped_table.shape_schema(infer_csv_schema(data_path, label, problem_type), kind, declared,
                                           data_path)
    return {**schema, "kind": RANK_KINDS[len(schema["input_shape"])]}


def infer_csv_schema(data_path: str, label: str, problem_type: str | None = None) -> dict:
    """A CSV table's schema: one column entry per feature column (numeric or string)."""
    check_problem_type(problem_type)
    frame, header = _read_csv(data_path)
    names = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise UserError(f"{data_path} has a header but no data rows; add rows below the header")
    if label not in names:
        raise UserError(f"label column {label!r} is not in {data_path}; its columns are: {', '.join(names)}")
    duplicated = sorted({n for n in header if header.count(n) > 1})
    if duplicated:
        raise UserError(f"{data_path} repeats column names ({', '.join(duplicated)}); give every column "
                        f"its own name in the header")
    if len(frame) < MIN_ROWS:
        raise UserError(f"{data_path} has only {len(frame)} rows, too few to split into train, validation "
                        f"and test; add rows (at least {MIN_ROWS}, better hundreds)")
    for name in names:
        if frame[name].str.contains("\n", regex=False).any():
            raise UserError(f"column {name!r} of {data_path} has a value spanning several lines; put each "
                            f"row on one line (remove line breaks inside quoted fields)")

    task = infer_task([v.strip() for v in frame[label]], label, problem_type)

    columns = table_columns({name: [v.strip() for v in frame[name]] for name in names if name != label})
    if not columns:
        raise UserError(f"{data_path} has no feature columns besides the label {label!r}; add at least one")
    return {"format": "csv", "label": label, "columns": columns, "task": task, "input_shape": [table_width(columns)],
            "csv_header": names}  # the file's columns in order: how the executor's line parser names fields


def table_columns(values: dict[str, list[str]]) -> list[dict]:
    """Column entries from each column's values (stripped strings, "" = missing): numeric (with the median
    as the fill for missing values) when every present value is a number, else string (with its vocabulary
    size); each with the name it has in the serving signature."""
    columns = []
    for name, column_values in values.items():
        numbers = [to_number(v) for v in column_values if v != ""]
        if all(n is not None for n in numbers):
            numbers.sort()
            fill = 0.0
            if numbers:
                mid = len(numbers) // 2
                fill = numbers[mid] if len(numbers) % 2 else (numbers[mid - 1] + numbers[mid]) / 2
            columns.append({"name": name, "kind": "numeric", "fill": float(fill)})
        else:
            distinct = len(set(column_values))  # "" (the fill for a missing value) counts as a value
            columns.append({"name": name, "kind": "string", "fill": "", "vocab_size": min(distinct, MAX_VOCAB)})
    for column, serving_name in zip(columns, serving_names([c["name"] for c in columns])):
        column["serving_name"] = serving_name  # the input's name in the exported model's serving signature
    return columns


def table_width(columns: list[dict]) -> int:
    """The length of the transformed feature vector: one per numeric column, a one-hot per string column."""
    return sum(1 if c["kind"] == "numeric" else c["vocab_size"] + 1 for c in columns)
