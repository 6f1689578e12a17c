"""A table whose numeric columns form a declared shape (`--input-shape 28,28,1` for pixel columns,
`--input-shape 40` or `40,1` for a sequence of 40 steps): a variant of the csv_table and tfrecords routes
(scalar features form a shape the same way), not a route of its own.

The columns, in file order, become one `array` column: the served model takes them as ONE input of the
declared shape (the raw pixels or the raw sequence), and the transform reshapes them to the model's
input shape. A leaf: it imports no route.
"""
from __future__ import annotations

from common.errors import UserError
from modelsearch.kinds import kind_of_shape, model_shape, shape_text, size, square_shape

INPUT_NAMES = {"image": "pixels", "sequence": "sequence", "tabular": "features"}


def array_name(kind: str, label: str) -> str:
    """The serving input's name: pixels, sequence or features (never the label's name)."""
    name = INPUT_NAMES[kind]
    return name if name != label else f"{name}_input"


def shape_schema(schema: dict, kind: str | None, declared: list[int] | None, data_path: str) -> dict:
    """The table's schema as is (no kind or shape declared, or a plain table), or its columns as one array."""
    if (kind is None and declared is None) or kind == "tabular":
        if declared is not None and declared != schema["input_shape"]:
            raise UserError(f"--input-shape {shape_text(declared)} does not match the table {data_path}: its "
                            f"{len(schema['columns'])} feature columns give {schema['input_shape'][0]} features; "
                            f"leave --input-shape out for a table")
        return schema
    columns = schema["columns"]
    if declared is None:
        declared = _default_shape(kind, len(columns), data_path)
    kind = kind or kind_of_shape(declared)
    shape = model_shape(kind, declared)
    if size(declared) != len(columns):
        raise UserError(f"--input-shape {shape_text(declared)} needs {size(declared)} values per row, but {data_path} "
                        f"has {len(columns)} feature columns besides the label {schema['label']!r}; give a shape "
                        f"whose sizes multiply to {len(columns)}, or remove the extra columns")
    text = [c["name"] for c in columns if c["kind"] != "numeric"]
    if text:
        raise UserError(f"column {text[0]!r} of {data_path} is not numeric, so the columns cannot form an "
                        f"{kind} of shape {shape_text(declared)}; a shaped table holds numbers only: drop or "
                        f"encode the column {text[0]!r}")
    name = array_name(kind, schema["label"])
    array = {"name": name, "kind": "array", "shape": declared, "serving_name": name,
             "source_columns": [c["name"] for c in columns], "fills": [c["fill"] for c in columns]}
    return {**schema, "columns": [array], "input_shape": shape}


def _default_shape(kind: str, n: int, data_path: str) -> list[int]:
    """Without --input-shape: a sequence of n steps, or a square grayscale image."""
    if kind == "sequence":
        return [n]
    return square_shape(n, f"{data_path} has {n} feature columns")
