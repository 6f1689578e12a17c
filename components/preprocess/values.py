"""How every input route reads values: numbers, class labels, the task, table columns, serving names.

A leaf shared by the routes (csv_table, image_folder, tfrecords): it imports no route, so routes import it
and the dispatcher (routes.py) imports the routes without a cycle. The rules: a value is missing when it is
empty (after stripping spaces); a column is numeric when every present value is a finite number.
"""
from __future__ import annotations

import math
import re

from common.errors import UserError

MAX_VOCAB = 1000          # one-hot width cap for a string column
MAX_INT_CLASSES = 20      # an integer label with at most this many values is a class label


def first_line(e: Exception) -> str:
    """An error's first line (a TensorFlow OpError's message without its op context), for a one-line UserError."""
    text = str(getattr(e, "message", "") or e).strip()
    return text.splitlines()[0] if text else type(e).__name__


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
    """Class names in numeric order when they are all numbers (2 before 10), else in text order."""
    if all(to_number(v) is not None for v in values):
        return sorted(values, key=lambda v: float(v))
    return sorted(values)


def infer_task(raw_labels: list[str], label: str, problem_type: str | None, missing: int = 0) -> dict:
    """The task from the label's raw values (strings): classification with its sorted classes, or regression.

    Only which values occur matters (and the first non-numeric one, for the error), not how often: a caller
    may pass each distinct value once and count the missing ones ("") in `missing`."""
    missing += sum(1 for v in raw_labels if v == "")
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
