"""Input route: a CSV file with a header row, one column per feature plus the label.

Numeric and string columns become one feature vector (z-scored numbers, one-hot strings); with
`--input-shape` / `--input-kind` the numeric columns form one array instead (see shaped_table.py).
Schema inference (pandas) and the pipeline's line parser read a field the same way (see values.py).
"""
from __future__ import annotations

import csv
import os

from common.errors import UserError
from components.preprocess import shaped_table
from components.preprocess.values import cell_value, infer_task, label_value, table_columns, table_width

FORMAT = "csv"
DEFAULT_LABEL = None      # --label is required
LABEL_NOUN = "column"
MIN_ROWS = 10             # fewer rows cannot be split into train / validation / test


def detect(path: str) -> bool:
    """Any path that is not a local folder: the last route tried, after tfrecords and image_folder."""
    return not os.path.isdir(path)


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


def table_schema(data_path: str, label: str, problem_type: str | None = None) -> dict:
    """A CSV table's schema: one column entry per feature column (numeric or string)."""
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
    return {"format": FORMAT, "label": label, "columns": columns, "task": task,
            "input_shape": [table_width(columns)],
            "csv_header": names}  # the file's columns in order: how parse_line names fields


def infer_schema(data_path: str, label: str, problem_type: str | None, kind: str | None,
                 declared: list[int] | None) -> dict:
    """The table's columns, or its numeric columns as one array of the declared shape."""
    return shaped_table.shape_schema(table_schema(data_path, label, problem_type), kind, declared, data_path)


def parse_line(schema: dict):
    """A function from one CSV line to the raw feature dict, or None for a blank line."""
    header, label = schema["csv_header"], schema["label"]
    label_index = header.index(label)
    getters = []
    for column in schema["columns"]:
        if column["kind"] == "array":  # a shaped table: its numeric columns as one flat list of floats
            parts = [(header.index(name), {"kind": "numeric", "fill": fill})
                     for name, fill in zip(column["source_columns"], column["fills"])]
            getters.append((column["name"], lambda fields, parts=parts: [cell_value(c, fields[i].strip())
                                                                         for i, c in parts]))
        else:
            i = header.index(column["name"])
            getters.append((column["name"], lambda fields, i=i, c=column: cell_value(c, fields[i].strip())))

    def parse(line: str):
        if not line.strip():
            return None
        fields = next(csv.reader([line]))
        fields += [""] * (len(header) - len(fields))
        row = {name: get(fields) for name, get in getters}
        row[label] = label_value(schema, fields[label_index].strip())
        return row

    return parse


def source(pipeline, schema: dict, data_path: str, example_files: list[str] | None):
    """(PCollection of the file's non-blank data lines, line -> raw row); example_files is unused."""
    import apache_beam as beam

    lines = (pipeline
             | "Read" >> beam.io.ReadFromText(data_path, skip_header_lines=1)
             | "DropBlank" >> beam.Filter(lambda line: bool(line.strip())))
    return lines, parse_line(schema)
