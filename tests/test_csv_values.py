"""CSV values checked before anything runs: missing values and stray text in numeric columns (imputed with the
median, reported in schema["notes"]), rows without a label (dropped, by inference and by the line parser),
warnings on thin classes and id-like labels, and the sniffed separator. Real files in tmp_path, no mocks."""
import csv
import json
import os

import numpy as np
import pytest

from components.preprocess import csv_table
from components.preprocess.csv_table import parse_line
from components.preprocess.schema import infer_schema
from components.preprocess.values import (MIN_CLASS_EXAMPLES, MISSING_TOKENS, cell_value, infer_task, is_missing,
                                          label_value)
from modelsearch.errors import UserError

TOKENS = ["", "nan", " NaN ", "NA", "n/a", "NULL", "None", "?", "inf", "-INF", "Infinity"]


def write_csv(path, header, rows, delimiter=","):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def columns(schema):
    return {c["name"]: c for c in schema["columns"]}


def note(schema, start):
    """The one note that starts with `start`."""
    [found] = [n for n in schema["notes"] if n.startswith(start)]
    return found


def balanced(i):
    return "ab"[i % 2]


# ---- missing values ----------------------------------------------------------------------------------------

def test_missing_tokens():
    for token in TOKENS + ["N/A", "none", "+inf", "-Infinity", "1e999", "-nan"]:
        assert is_missing(token), token
    for value in ("0", "0.0", "-1.5", "abc", "n", "nana", "1e3"):
        assert not is_missing(value), value
    assert all(t == t.strip().lower() for t in MISSING_TOKENS)  # compared stripped and lower-cased


def test_missing_values_in_a_numeric_column_are_imputed_with_the_median(tmp_path):
    # age: 1..29 and one of each missing token; the median of the numbers is 15.
    rows = [[i + 1, balanced(i)] for i in range(29)] + [[t, balanced(i)] for i, t in enumerate(TOKENS)]
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["age", "y"], rows), "y")
    assert columns(schema)["age"]["kind"] == "numeric" and columns(schema)["age"]["fill"] == 15.0
    assert schema["input_shape"] == [1]
    assert note(schema, "column 'age'") == ("column 'age': 11 missing values (empty, nan, NaN, NA, n/a, ...), "
                                            "imputed with the median 15")
    assert schema["delimiter"] == "," and not any(n.startswith("read as") for n in schema["notes"])
    parse = parse_line(schema)
    for token in TOKENS:
        assert parse(f"{token},a")["age"] == 15.0, token
    assert parse("3.5,b") == {"age": 3.5, "y": b"b"}


def test_a_column_of_missing_values_warns(tmp_path):
    rows = [[i, "" if i % 2 else "NA", balanced(i)] for i in range(40)]
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["x", "empty", "y"], rows), "y")
    assert columns(schema)["empty"] == {"name": "empty", "kind": "numeric", "fill": 0.0, "serving_name": "empty"}
    assert note(schema, "warning: column 'empty'") == ("warning: column 'empty': all 40 values are missing "
                                                       "(NA, empty), so it is the constant 0; fill it in or drop it")


def test_notes_on_a_sample_say_so(tmp_path):
    n = csv_table.SAMPLE_ROWS + 50
    rows = [["NA" if i < 4 else i % 10, balanced(i)] for i in range(n)]
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["x", "y"], rows), "y")
    assert note(schema, "column 'x'") == (f"column 'x': 4 missing values (NA) in the first "
                                          f"{csv_table.SAMPLE_ROWS:,} rows, imputed with the median 5")


def test_shaped_table_columns_take_their_fills(tmp_path):
    rows = [[i, "?" if i == 0 else 2 * i, i, i, balanced(i)] for i in range(41)]
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["p0", "p1", "p2", "p3", "y"], rows), "y", None, None, "2,2")
    [array] = schema["columns"]
    assert array["kind"] == "array" and array["fills"] == [20.0, 41.0, 20.0, 20.0]
    assert parse_line(schema)("7,?,1,2,a")[array["name"]] == [7.0, 41.0, 1.0, 2.0]


# ---- text in numeric columns -----------------------------------------------------------------------------

def test_a_few_text_values_in_a_numeric_column_are_missing(tmp_path):
    text = ["unknown", "x", "n.a.", "-", "approx 3", "tbd", "??"]  # 7 of 200 values: 3.5%
    rows = [[text[i] if i < 7 else i, "" if i == 199 else i, balanced(i)] for i in range(200)]
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["w", "v", "y"], rows), "y")
    w = columns(schema)["w"]
    assert w["kind"] == "numeric" and w["fill"] == 103.0  # the median of 7..199
    assert note(schema, "column 'w'") == ("column 'w': 7 text values in a numeric column ('unknown', 'x', 'n.a.', "
                                          "'-', 'approx 3', ...), imputed with the median 103")
    assert parse_line(schema)("unknown,5,a")["w"] == 103.0
    assert cell_value(w, "tbd") == cell_value(w, "NA") == 103.0
    rows[0][0], rows[1][0] = "", "NA"  # missing values and text in one note
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["w", "v", "y"], rows), "y")
    assert note(schema, "column 'w'") == ("column 'w': 2 missing values (empty, NA) and 5 text values in a numeric "
                                          "column ('n.a.', '-', 'approx 3', 'tbd', '??'), imputed with the median 103")


def test_categorical_and_mostly_text_columns_stay_strings(tmp_path):
    rows = [[["red", "blue", "green"][i % 3], i if i % 4 == 0 else f"id{i}", f"v{i}" if i % 5 == 0 else i,
             balanced(i)] for i in range(100)]
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["colour", "code", "dirty", "y"], rows), "y")
    kinds = {name: c["kind"] for name, c in columns(schema).items()}
    assert kinds == {"colour": "string", "code": "string", "dirty": "string"}
    assert columns(schema)["colour"]["vocab_size"] == 3
    assert not [n for n in schema["notes"] if "'colour'" in n or "'code'" in n]  # text columns: nothing to say
    # 20% text is too much to read as missing, but most values are numbers: say why it is text.
    assert note(schema, "column 'dirty'") == ("column 'dirty': read as text, since 20 of its 100 values are not "
                                              "numbers ('v0', 'v5', 'v10', 'v15', 'v20', ...); clean them to make "
                                              "it numeric")


# ---- missing labels ------------------------------------------------------------------------------------------

def test_rows_with_a_missing_label_are_dropped(tmp_path):
    labels = ["", "NA", "nan", " ? "]
    rows = [[i, "yes" if i % 2 else "no"] for i in range(40)] + [[1000 + i, t] for i, t in enumerate(labels)]
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["x", "y"], rows), "y")
    assert schema["task"] == {"type": "classification", "num_classes": 2, "classes": ["no", "yes"]}  # no "NA"
    assert note(schema, "dropped") == "dropped 4 rows with a missing label 'y' (empty, NA, nan, ?)"
    assert columns(schema)["x"]["fill"] == 19.5  # the dropped rows' x (1000...) are not in the median
    parse = parse_line(schema)
    assert [parse(f"5,{t}") for t in labels] == [None] * 4
    assert parse("5") is None  # a short row: its label is missing too
    assert parse("5,yes") == {"x": 5.0, "y": b"yes"}


def test_a_missing_regression_label_is_dropped_not_zero(tmp_path):
    rows = [[i, i * 1.5] for i in range(30)] + [[1, ""], [2, "NaN"], [3, "inf"]]
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["x", "price"], rows), "price")
    assert schema["task"] == {"type": "regression"}
    assert note(schema, "dropped") == "dropped 3 rows with a missing label 'price' (empty, NaN, inf)"
    parse = parse_line(schema)
    assert parse("1,") is None and parse("1,NaN") is None
    assert parse("1,0") == {"x": 1.0, "price": 0.0}  # a real 0 stays
    assert label_value(schema, "NA") is None and label_value(schema, "0") == 0.0


def test_every_label_missing_is_an_error(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["x", "y"], [[i, "NA" if i % 2 else ""] for i in range(20)])
    with pytest.raises(UserError, match=r"label column 'y' of .*t.csv has no values \(all 20 rows miss it: "
                                        r"empty, NA\); fill it in or pick another --label"):
        infer_schema(path, "y")
    path = write_csv(tmp_path / "t.csv", ["x", "y"], [[i, "" if i < 15 else i % 2] for i in range(20)])
    with pytest.raises(UserError, match="has only 5 rows with a label, too few"):
        infer_schema(path, "y")


def test_infer_task_rejects_missing_labels():
    """The TFRecords route reads every example's label and has no row to drop: a missing one is an error."""
    with pytest.raises(UserError, match="has 2 missing values"):
        infer_task(["1", "NA", "0", "nan"], "label", None)


# ---- warnings on the label -----------------------------------------------------------------------------------

def test_thin_classes_warn(tmp_path):
    labels = ["a"] * 40 + ["b"] * 40 + ["c"] * 3 + ["d"] * (MIN_CLASS_EXAMPLES - 1)
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["x", "y"], [[i, v] for i, v in enumerate(labels)]), "y")
    assert note(schema, "warning: label") == (f"warning: label 'y': 2 classes with fewer than {MIN_CLASS_EXAMPLES} "
                                              f"examples, which validation or test (15% of the rows each) may get "
                                              f"none of: 'c' (3), 'd' ({MIN_CLASS_EXAMPLES - 1}); add examples of them")
    enough = ["a"] * MIN_CLASS_EXAMPLES + ["b"] * MIN_CLASS_EXAMPLES
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["x", "y"], [[i, v] for i, v in enumerate(enough)]), "y")
    assert schema["notes"] == []


def test_an_id_like_label_warns(tmp_path):
    rows = [[i % 3, f"user{i // 2}"] for i in range(40)]  # 20 classes of 2 rows: half the rows, fine ...
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["x", "id"], rows), "id")
    assert not any("id column" in n for n in schema["notes"])
    rows = [[i % 3, f"user{i}"] for i in range(40)]  # ... 40 classes of 1 row: an id
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["x", "id"], rows), "id")
    assert schema["notes"] == ["warning: label 'id' has 40 classes in 40 rows, more than half the rows: is it an id "
                               "column? pick another --label, or pass --problem-type regression for a numeric target"]


# ---- separators ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_the_separator_is_sniffed_and_used_everywhere(tmp_path, delimiter):
    rows = [[f"{i / 4}", ["paris", "rome"][i % 2], "NA" if i == 0 else i, "" if i == 1 else balanced(i)]
            for i in range(41)]
    path = write_csv(tmp_path / "t.csv", ["a", "city", "b", "y"], rows, delimiter)
    schema = infer_schema(path, "y")
    assert schema["delimiter"] == delimiter and schema["csv_header"] == ["a", "city", "b", "y"]
    assert {n: c["kind"] for n, c in columns(schema).items()} == {"a": "numeric", "city": "string", "b": "numeric"}
    assert columns(schema)["city"]["vocab_size"] == 2
    assert schema["notes"][:2] == [f"read as {delimiter!r}-separated", "dropped 1 row with a missing label 'y' (empty)"]
    assert note(schema, "column 'b'") == "column 'b': 1 missing value (NA), imputed with the median 21"
    parse = parse_line(schema)
    assert parse(delimiter.join(["2.5", "rome", "NA", "b"])) == {"a": 2.5, "city": b"rome", "b": 21.0, "y": b"b"}
    assert parse(delimiter.join(["2.5", "rome", "3", ""])) is None


def test_a_schema_without_a_delimiter_reads_commas(tmp_path):
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["a", "y"], [[i, balanced(i)] for i in range(40)]), "y")
    old = {k: v for k, v in schema.items() if k not in ("delimiter", "notes")}
    assert parse_line(old)("1.5,b") == {"a": 1.5, "y": b"b"}


def test_commas_win_over_separators_inside_fields(tmp_path):
    rows = [[i, f"x; y | z{i}", "a b", balanced(i)] for i in range(40)]
    schema = infer_schema(write_csv(tmp_path / "t.csv", ["a", "note", "other", "y"], rows), "y")
    assert schema["delimiter"] == "," and columns(schema)["note"]["kind"] == "string"


def test_an_unsure_separator_is_an_error_naming_it(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;b;y\n1;2;x;9\n3\n" + "".join(f"{i};{i}\n" for i in range(20)))
    with pytest.raises(UserError, match=r"t.csv reads as one column 'a;b;y': it is probably ';'-separated, but its "
                                        r"first lines do not all have the same number of ';'-separated fields"):
        infer_schema(str(path), "y")
    path.write_text("a\tb\ty\n1\t2\n1\t2\tx\t4\t5\n" + "".join(f"{i}\n" for i in range(20)))
    with pytest.raises(UserError, match=r"probably '\\t'-separated"):
        infer_schema(str(path), "y")


# ---- the pipeline ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_pipeline_drops_unlabelled_rows_and_imputes(tmp_path):
    """Through Beam and tf.Transform: rows without a label are in no split, missing and text values are filled."""
    from components.preprocess.executor import run_preprocess
    from modelsearch.data import load_arrays
    from modelsearch.raw_examples import load_raw_split

    rows = [["NA" if i % 9 == 0 else "oops" if i == 4 else i, "NA" if i % 10 == 3 else balanced(i)]
            for i in range(80)]
    path = write_csv(tmp_path / "t.csv", ["x", "y"], rows, ";")
    schema = infer_schema(path, "y")
    assert note(schema, "dropped") == "dropped 8 rows with a missing label 'y' (NA)"
    run_preprocess(path, schema, str(tmp_path / "examples"), str(tmp_path / "transform"), seed=0)
    with open(os.path.join(tmp_path, "transform", "modelsearch_schema.json")) as f:
        assert sum(json.load(f)["split_counts"].values()) == 72
    x, y = load_arrays(str(tmp_path / "examples"), "train", schema)
    assert np.isfinite(x).all() and set(y) <= {0, 1}
    inputs, labels = load_raw_split(str(tmp_path / "examples"), schema)  # the raw test rows: filled too
    numbers = {float(x) for x, label in rows if label != "NA" and isinstance(x, int)}
    assert len(labels) > 0 and set(np.ravel(inputs["x"]).tolist()) <= numbers | {columns(schema)["x"]["fill"]}
