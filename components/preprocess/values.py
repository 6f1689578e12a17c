"""How every input route reads values: numbers, class labels, the task, table columns, serving names.

A leaf shared by the routes (csv_table, image_folder, tfrecords): it imports no route, so routes import it
and the dispatcher (routes.py) imports the routes without a cycle. The rules, the same in schema inference
and in the pipeline's parsers:

- A value is MISSING when, stripped and in any case, it is one of MISSING_TOKENS (empty, nan, NA, N/A,
  null, None, ?, inf, -inf, Infinity) or any other non-finite number.
- A column is NUMERIC when its present (not missing) values are numbers, or all but a few: text values
  that are at most MIXED_TEXT_SHARE (5%) of its present values are typos or codes for "unknown" in a column
  of numbers, and are read as missing. More text than that (a categorical column such as red / blue / green,
  or a column of mostly text) makes a STRING column, whose values, missing tokens included, are categories
  as written (a one-hot slot for "NA" is as good as one for "").
- A numeric column's missing values take its FILL, the median of its numbers (0 when it has none).
- A label is missing by the same tokens: such a row has no target, never a class "NA" nor a regression
  target 0.0. label_value returns None for it; the CSV route drops those rows (infer_task, which the
  TFRecords route calls with every example's label, rejects missing labels).
- A class with fewer than MIN_CLASS_EXAMPLES (20) examples gets a warning: the 70/15/15 split by hash
  leaves each of validation and test without any of them with probability 0.85^n (4% at 20, 20% at 10).
What inference found (imputed values, text in numeric columns, dropped rows, thin classes) goes to
schema["notes"] as one-line messages for the user; warnings start with "warning: ".
"""
from __future__ import annotations

import math
import re
from collections import Counter

from common.errors import UserError

MAX_VOCAB = 1000          # one-hot width cap for a string column
MAX_INT_CLASSES = 20      # an integer label with at most this many values is a class label
# What a field holds when it holds no value (compared stripped and lower-cased); any non-finite number too.
MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "?", "inf", "-inf", "infinity", "-infinity"})
MIXED_TEXT_SHARE = 0.05   # a numeric column may hold this share of text values (read as missing)
MIN_CLASS_EXAMPLES = 20   # fewer examples of a class: validation or test may get none (module docstring)
SHOWN_VALUES = 5          # the values a note lists


def is_missing(value: str) -> bool:
    """Whether a field holds no value: one of MISSING_TOKENS in any case, or a non-finite number (+nan, 1e999)."""
    value = value.strip()
    if value.lower() in MISSING_TOKENS:
        return True
    try:
        return not math.isfinite(float(value))
    except ValueError:
        return False


def to_number(value: str) -> float | None:
    """The finite float a CSV field holds, or None (missing, text, nan, inf)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def number_text(number: float) -> str:
    """A number as a person writes it: 3 for 3.0, 2.5 as 2.5."""
    return str(int(number)) if number.is_integer() else repr(number)


def normalize_label(value: str) -> str:
    """A class label as a string, so that "3", "3.0" and " 3 " are the same class."""
    value = value.strip()
    number = to_number(value)
    return value if number is None else number_text(number)


def cell_value(column: dict, text: str):
    """A table cell (stripped text) as the raw value the pipeline feeds TFT: float or bytes. In a numeric
    column anything but a number (missing, or the few text values the column may hold) takes the fill."""
    if column["kind"] == "numeric":
        number = to_number(text)
        return float(column["fill"] if number is None else number)
    return text.encode("utf-8")


def label_value(schema: dict, text: str):
    """The label's raw value: a float (regression) or the class name as bytes; None when it is missing (the
    row has no target: the route drops it)."""
    if is_missing(text):
        return None
    if schema["task"]["type"] == "regression":
        return to_number(text)
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


def infer_task(raw_labels: list[str], label: str, problem_type: str | None) -> dict:
    """The task from the label's raw values (strings): classification with its sorted classes, or regression.

    Only which values occur matters (and the first non-numeric one, for the error), not how often: a caller
    may pass each distinct value once. Missing values are an error here: a route that drops their rows
    (csv_table) passes the present ones only."""
    missing = sum(1 for v in raw_labels if is_missing(v))
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


def label_notes(counts: dict[str, int], task: dict, label: str) -> list[str]:
    """Warnings on a classification label from its examples per raw value: an id-like label (more classes
    than half the rows), or classes too thin for the split (fewer than MIN_CLASS_EXAMPLES examples)."""
    if task["type"] != "classification":
        return []
    per_class = Counter()
    for value, n in counts.items():
        per_class[normalize_label(value)] += n
    rows = sum(per_class.values())
    if len(per_class) > rows / 2:
        return [f"warning: label {label!r} has {len(per_class)} classes in {rows} rows, more than half the rows: "
                f"is it an id column? pick another --label, or pass --problem-type regression for a numeric target"]
    thin = sorted((n, c) for c, n in per_class.items() if n < MIN_CLASS_EXAMPLES)
    if not thin:
        return []
    return [f"warning: label {label!r}: {count_text(len(thin), 'class', 'classes')} with fewer than "
            f"{MIN_CLASS_EXAMPLES} examples, which validation or test (15% of the rows each) may get none of: "
            f"{_listed([f'{c!r} ({n})' for n, c in thin])}; add examples of them"]


def count_text(n: int, one: str, many: str | None = None) -> str:
    """A count and its noun: 1 row, 3 rows."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def _listed(items: list[str]) -> str:
    """Up to SHOWN_VALUES items of a note, then "..."."""
    return ", ".join(items[:SHOWN_VALUES]) + (", ..." if len(items) > SHOWN_VALUES else "")


def _median(numbers: list[float]) -> float:
    """The median (0 for none): a fill robust to outliers."""
    if not numbers:
        return 0.0
    numbers = sorted(numbers)
    mid = len(numbers) // 2
    return float(numbers[mid] if len(numbers) % 2 else (numbers[mid - 1] + numbers[mid]) / 2)


def _column(name: str, values: list[str], scope: str) -> tuple[dict, str | None]:
    """One column's entry (numeric or string, by the module docstring's rule) and its note, if any."""
    numbers, missing, text = [], Counter(), Counter()
    for value in values:
        if is_missing(value):
            missing[value] += 1
        elif (number := to_number(value)) is not None:
            numbers.append(number)
        else:
            text[value] += 1
    n_text = sum(text.values())
    present = len(numbers) + n_text
    if n_text > MIXED_TEXT_SHARE * present:
        distinct = len(set(values))  # "" (the fill for a missing value) counts as a value
        column = {"name": name, "kind": "string", "fill": "", "vocab_size": min(distinct, MAX_VOCAB)}
        note = None
        if len(numbers) > present / 2:  # mostly numbers, yet too much text to read it as missing
            note = (f"column {name!r}: read as text, since {n_text} of its {present} values{scope} are not numbers "
                    f"({_quoted(text)}); clean them to make it numeric")
        return column, note
    column = {"name": name, "kind": "numeric", "fill": _median(numbers)}
    if not numbers and missing:
        return column, (f"warning: column {name!r}: all {len(values)} values{scope} are missing "
                        f"({tokens_text(missing)}), so it is the constant 0; fill it in or drop it")
    return column, _imputed_note(name, missing, text, column["fill"], scope)


def _imputed_note(name: str, missing: Counter, text: Counter, fill: float, scope: str) -> str | None:
    """What a numeric column's fill replaces: `column 'age': 12 missing values (nan, NA, empty), imputed ...`."""
    n_missing, n_text = sum(missing.values()), sum(text.values())
    parts = [f"{count_text(n_missing, 'missing value')} ({tokens_text(missing)})"] if n_missing else []
    if n_text:
        parts.append(f"{count_text(n_text, 'text value')} in a numeric column ({_quoted(text)})")
    if not parts:
        return None
    return f"column {name!r}: {' and '.join(parts)}{scope}, imputed with the median {number_text(fill)}"


def tokens_text(missing: Counter) -> str:
    """The missing tokens as written, most common first ("" as empty)."""
    return _listed(["empty" if v == "" else v for v, _ in missing.most_common()])


def _quoted(text: Counter) -> str:
    return _listed([repr(v) for v, _ in text.most_common()])


def describe_columns(values: dict[str, list[str]], scope: str = "") -> tuple[list[dict], list[str]]:
    """Column entries from each column's values (stripped strings; see the module docstring for the rules), each
    with the name it has in the serving signature, and the notes on them. `scope` says which rows the values
    are when not all of the data's (" in the first 10,000 rows")."""
    columns, notes = [], []
    for name, column_values in values.items():
        column, note = _column(name, column_values, scope)
        columns.append(column)
        notes += [note] if note else []
    for column, serving_name in zip(columns, serving_names([c["name"] for c in columns])):
        column["serving_name"] = serving_name  # the input's name in the exported model's serving signature
    return columns, notes


def table_columns(values: dict[str, list[str]]) -> list[dict]:
    """describe_columns' column entries, without the notes."""
    return describe_columns(values)[0]


def table_width(columns: list[dict]) -> int:
    """The length of the transformed feature vector: one per numeric column, a one-hot per string column."""
    return sum(1 if c["kind"] == "numeric" else c["vocab_size"] + 1 for c in columns)
