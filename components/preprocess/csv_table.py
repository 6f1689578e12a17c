"""Input route: a CSV file with a header row, one column per feature plus the label.

Its separator (comma, semicolon, tab or |) is sniffed from the first lines and kept in schema["delimiter"]
for the pipeline's parser. Values are checked before anything runs (the rules are values.py's): missing
values (empty, NA, nan, ?, ...) and the few text values of a numeric column are imputed with its median,
rows without a label are dropped, and what was found goes to schema["notes"] (with warnings on thin classes
and id-like labels).

Numeric and string columns become one feature vector (z-scored numbers, one-hot strings); with
`--input-shape` / `--input-kind` the numeric columns form one array instead (see shaped_table.py).
Schema inference (pandas, on a sample) and the pipeline's line parser read a field the same way (see values.py);
the parser returns None for a row with a missing label, which the pipeline drops like a blank line.

The file is read through tf.io.gfile, so a local path and a gs:// (or any TensorFlow filesystem) URI are
read alike. Schema inference is cheap on a large file: the columns (names, numeric or string, fills,
vocabulary sizes) come from a SAMPLE, the first SAMPLE_BYTES / SAMPLE_ROWS of the file; only the label's
values (the task and its classes, which must be complete), the row count and the one-line-per-row check
need the whole file, and they are streamed through it once with the csv module (constant memory but the
label's distinct values and their counts). So the notes on columns count what the sample holds ("in the
first N rows" when it is not the whole file), those on the label the whole file. What a sample can miss is
harmless in the pipeline: a column numeric in the sample that holds text further down takes its fill there
(values.cell_value), a string value the sample did not see falls into the vocabulary's out-of-vocabulary
bucket (tf.Transform's vocabulary is computed over the whole training split, top vocab_size values), and
rows beyond the sample with extra fields have them ignored (parse_line), as ever.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from itertools import islice

from common.errors import UserError, first_line
from components.preprocess import shaped_table
from components.preprocess.values import (cell_value, count_text, describe_columns, infer_task, is_missing,
                                          label_notes, label_value, table_width, to_number, tokens_text)

FORMAT = "csv"
DEFAULT_LABEL = None      # --label is required
LABEL_NOUN = "column"
MIN_ROWS = 10             # fewer rows cannot be split into train / validation / test
SAMPLE_BYTES = 4 * 1024 ** 2   # the columns are inferred from at most this much of the file's start ...
SAMPLE_ROWS = 10_000           # ... and at most this many rows of it
CHUNK_BYTES = 1024 ** 2        # what the pass over the whole file (the label column) reads at a time
LABEL_VALUES_LIMIT = 100_000   # distinct label values that pass keeps: a label with more can only be regression
UTF8_BOM = b"\xef\xbb\xbf"
DELIMITERS = ",;\t|"         # the separators sniffed; a schema without "delimiter" means ","
SNIFF_LINES = 50              # the sniffer reads the sample's first lines (whole lines: a cut one misleads it) ...
SNIFF_CHARS = 64 * 1024       # ... up to about this much text, but always the header and one row
FIX = ("pass a UTF-8 CSV file (separated by commas, semicolons, tabs or |) with a header row and the same number "
       "of fields on every line")


def detect(path: str) -> bool:
    """Any path that is not a folder: the last route tried, after tfrecords and image_folder."""
    import tensorflow as tf

    return not tf.io.gfile.isdir(path)


def _unreadable(data_path: str, e: Exception) -> UserError:
    return UserError(f"{data_path} cannot be read ({first_line(e)}); check its permissions")


def _read_sample(data_path: str) -> str:
    """The file's first SAMPLE_BYTES (all of a smaller file), cut after the last whole line in them, as text."""
    import tensorflow as tf

    gfile = tf.io.gfile
    try:
        if not gfile.exists(data_path):
            raise UserError(f"data file {data_path} does not exist; pass the path of a CSV file with a header row")
        if gfile.isdir(data_path):
            raise UserError(f"{data_path} is not a file; pass the path of a CSV file with a header row")
        with gfile.GFile(data_path, "rb") as f:
            data = f.read(SAMPLE_BYTES + 1)
    except tf.errors.OpError as e:
        raise _unreadable(data_path, e) from None
    whole, end = len(data) <= SAMPLE_BYTES, 0
    if not whole:
        end = data.rfind(b"\n", 0, SAMPLE_BYTES) + 1
        data = data[:end] if end else data[:SAMPLE_BYTES]
    try:
        return data.decode("utf-8-sig", errors="strict" if whole or end else "ignore")  # no line end: cut anywhere
    except UnicodeDecodeError as e:
        raise UserError(f"{data_path} cannot be read as CSV ({first_line(e)}); {FIX}") from None


def _sniff_delimiter(text: str, data_path: str) -> str:
    """The separator of the sample's first lines, "," when the sniffer is unsure; a header that reads as one
    column holding another separator is an error (its lines do not split alike: the sniffer could not tell)."""
    head, size = [], 0
    for line in islice(io.StringIO(text, newline=""), SNIFF_LINES):
        if size >= SNIFF_CHARS and len(head) >= 2:
            break
        head.append(line)
        size += len(line)
    head = "".join(head)
    try:
        delimiter = csv.Sniffer().sniff(head, delimiters=DELIMITERS).delimiter
    except csv.Error:  # "Could not determine delimiter"
        delimiter = ","
    header = next(csv.reader(io.StringIO(head, newline=""), delimiter=delimiter), [])
    other = next((d for d in DELIMITERS if d in header[0]), None) if len(header) == 1 else None
    if other:
        raise UserError(f"{data_path} reads as one column {header[0][:60]!r}: it is probably {other!r}-separated, "
                        f"but its first lines do not all have the same number of {other!r}-separated fields; "
                        f"give every line as many fields as the header")
    return delimiter


def _read_csv(data_path: str):
    """(the sample's rows as a DataFrame of strings, the header's names as the file has them, the separator)."""
    import pandas as pd

    text = _read_sample(data_path)
    delimiter = _sniff_delimiter(text, data_path)
    try:
        # A sample cut inside a quoted field that spans lines ends in a parse error: such a field is an
        # error anyway (one row per line, see _scan).
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False,
                            skip_blank_lines=True, nrows=SAMPLE_ROWS)
    except pd.errors.EmptyDataError:
        raise UserError(f"{data_path} is empty; it needs a header row and data rows") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise UserError(f"{data_path} cannot be read as CSV ({first_line(e)}); {FIX}") from None
    frame = frame.fillna("")  # short rows: missing trailing fields
    header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
    return frame, header, delimiter


def _lines(data_path: str):
    """The whole file's lines (text, line ends kept), read through tf.io.gfile a chunk at a time."""
    import tensorflow as tf

    rest, number = b"", 0
    try:
        with tf.io.gfile.GFile(data_path, "rb") as f:
            while True:
                chunk = f.read(CHUNK_BYTES)
                data = rest + (chunk.removeprefix(UTF8_BOM) if number == 0 and not rest else chunk)
                end = data.rfind(b"\n") + 1 if chunk else len(data)  # whole lines only, but at the end
                rest = data[end:]
                try:
                    text = data[:end].decode("utf-8")
                except UnicodeDecodeError as e:
                    raise UserError(f"{data_path} cannot be read as CSV ({first_line(e)} after line {number}); "
                                    f"{FIX}") from None
                for line in io.StringIO(text, newline=""):
                    number += 1
                    yield line
                if not chunk:
                    return
    except tf.errors.OpError as e:
        raise _unreadable(data_path, e) from None


def _scan(data_path: str, header: list[str], names: list[str], label: str, delimiter: str) -> dict:
    """One pass over the whole file (the csv module over tf.io.gfile): its data rows, the label's distinct
    present values with their counts in the order they first occur (up to LABEL_VALUES_LIMIT, then only the
    first non-numeric one), its missing values by token, and the first row with a value spanning several lines
    (the pipeline reads one row per line)."""
    index = names.index(label)  # names: pandas' (an unnamed column is "Unnamed: <i>"), in the header's order
    rows, counts, missing = 0, Counter(), Counter()
    beyond, spanning, complete = [], None, True
    reader = csv.reader(_lines(data_path), delimiter=delimiter)
    try:
        next(reader, None)  # the header
        line = reader.line_num
        for fields in reader:
            if spanning is None and reader.line_num - line > 1:
                spanning = next((header[i] if i < len(header) else f"field {i + 1}"
                                 for i, v in enumerate(fields) if "\n" in v or "\r" in v), header[0])
            line = reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line: pandas and the pipeline skip it too
            rows += 1
            value = fields[index].strip() if index < len(fields) else ""
            if is_missing(value):
                missing[value] += 1
            elif value in counts or len(counts) < LABEL_VALUES_LIMIT:
                counts[value] += 1
            else:
                complete = False
                if not beyond and to_number(value) is None:
                    beyond.append(value)  # what makes the label non-numeric (see table_schema)
    except csv.Error as e:
        raise UserError(f"{data_path} cannot be read as CSV ({first_line(e)} on line {reader.line_num}); "
                        f"{FIX}") from None
    return {"rows": rows, "counts": counts, "labels": [*counts, *beyond], "missing": missing,
            "spanning": spanning, "all_labels": complete}


def _dropped_labels(scan: dict, label: str, data_path: str) -> list[str]:
    """The note on the rows dropped for a missing label; an error when every row misses it."""
    missing = scan["missing"]
    n = sum(missing.values())
    if not scan["labels"]:
        raise UserError(f"label column {label!r} of {data_path} has no values (all {n} rows miss it: "
                        f"{tokens_text(missing)}); fill it in or pick another --label")
    return [f"dropped {count_text(n, 'row')} with a missing label {label!r} ({tokens_text(missing)})"] if n else []


def table_schema(data_path: str, label: str, problem_type: str | None = None) -> dict:
    """A CSV table's schema: one column entry per feature column (numeric or string)."""
    frame, header, delimiter = _read_csv(data_path)
    names = [str(c) for c in frame.columns]
    if len(frame) == 0:
        raise UserError(f"{data_path} has a header but no data rows; add rows below the header")
    if label not in names:
        raise UserError(f"label column {label!r} is not in {data_path}; its columns are: {', '.join(names)}")
    duplicated = sorted({n for n in header if header.count(n) > 1})
    if duplicated:
        raise UserError(f"{data_path} repeats column names ({', '.join(duplicated)}); give every column "
                        f"its own name in the header")
    scan = _scan(data_path, header, names, label, delimiter)
    notes = [f"read as {delimiter!r}-separated"] if delimiter != "," else []
    notes += _dropped_labels(scan, label, data_path)
    kept = scan["rows"] - sum(scan["missing"].values())
    if kept < MIN_ROWS:
        raise UserError(f"{data_path} has only {kept} rows{' with a label' if kept < scan['rows'] else ''}, too "
                        f"few to split into train, validation and test; add rows (at least {MIN_ROWS}, better "
                        f"hundreds)")
    if scan["spanning"] is not None:
        raise UserError(f"column {scan['spanning']!r} of {data_path} has a value spanning several lines; put each "
                        f"row on one line (remove line breaks inside quoted fields)")

    # The task from the label's values in the WHOLE file (the classes must all be known: the transform maps
    # a label to its index among them, and the model has one output per class).
    task = infer_task(scan["labels"], label, problem_type)
    if task["type"] == "classification" and not scan["all_labels"]:
        raise UserError(f"label column {label!r} of {data_path} has more than {LABEL_VALUES_LIMIT:,} distinct "
                        f"values, too many classes; use problem type regression for a numeric label")
    notes += label_notes(scan["counts"], task, label)

    # The columns from the sample (see the module docstring), from its rows the pipeline keeps.
    labelled = ~frame[label].map(is_missing)
    sample = frame[labelled] if labelled.any() else frame
    scope = f" in the first {len(frame):,} rows" if len(frame) < scan["rows"] else ""
    columns, column_notes = describe_columns({name: [v.strip() for v in sample[name]]
                                              for name in names if name != label}, scope)
    if not columns:
        raise UserError(f"{data_path} has no feature columns besides the label {label!r}; add at least one")
    return {"format": FORMAT, "label": label, "columns": columns, "task": task,
            "input_shape": [table_width(columns)],
            "csv_header": names,  # the file's columns in order: how parse_line names fields
            "delimiter": delimiter, "notes": notes + column_notes}


def infer_schema(data_path: str, label: str, problem_type: str | None, kind: str | None,
                 declared: list[int] | None) -> dict:
    """The table's columns, or its numeric columns as one array of the declared shape."""
    return shaped_table.shape_schema(table_schema(data_path, label, problem_type), kind, declared, data_path)


def parse_line(schema: dict):
    """A function from one CSV line to the raw feature dict, or None for a line the pipeline drops: a blank
    one, or one whose label is missing (counted in schema["notes"])."""
    header, label = schema["csv_header"], schema["label"]
    delimiter = schema.get("delimiter", ",")  # a schema from before the key: comma-separated
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
        fields = next(csv.reader([line], delimiter=delimiter))
        fields += [""] * (len(header) - len(fields))
        target = label_value(schema, fields[label_index].strip())
        if target is None:
            return None
        row = {name: get(fields) for name, get in getters}
        row[label] = target
        return row

    return parse


def source(pipeline, schema: dict, data_path: str, example_files: list[str] | None):
    """(PCollection of the file's non-blank data lines, line -> raw row); example_files is unused."""
    import apache_beam as beam

    lines = (pipeline
             | "Read" >> beam.io.ReadFromText(data_path, skip_header_lines=1)
             | "DropBlank" >> beam.Filter(lambda line: bool(line.strip())))
    return lines, parse_line(schema)
