"""Preprocess: schema inference, user errors, the Beam + TFT pipeline, load_split, serving, the Executor."""
import csv
import json
import os

import numpy as np
import pytest

from components.preprocess.schema import infer_schema
from components.preprocess.values import normalize_label, serving_names
from modelsearch.errors import UserError

N_ROWS = 60


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def make_rows(n=N_ROWS, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a, b, city = rng.normal(5, 2), int(rng.integers(0, 100)), str(rng.choice(["paris", "rome", "oslo"]))
        target = ["low", "mid", "high"][int(a > 5) + int(city == "rome")]
        rows.append([f"{a:.3f}", "" if i % 17 == 0 else b, "" if i % 13 == 0 else city, target,
                     f"{2 * a + b / 10:.3f}"])
    return rows


HEADER = ["a", "b", "city", "target", "price"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def cls_csv(data_dir):
    rows = [r[:4] for r in make_rows()]  # a, b, city -> 3-class string label
    return write_csv(data_dir / "cls.csv", HEADER[:4], rows)


@pytest.fixture(scope="module")
def reg_csv(data_dir):
    rows = [[r[0], r[2], r[4]] for r in make_rows(seed=1)]  # a, city -> numeric price
    return write_csv(data_dir / "reg.csv", ["a", "city", "price"], rows)


# ---- schema inference ------------------------------------------------------------------------------------

def test_infer_schema_classification(cls_csv):
    schema = infer_schema(cls_csv, "target")
    assert schema["format"] == "csv" and schema["label"] == "target"
    kinds = {c["name"]: c["kind"] for c in schema["columns"]}
    assert kinds == {"a": "numeric", "b": "numeric", "city": "string"}
    city = next(c for c in schema["columns"] if c["name"] == "city")
    assert city["vocab_size"] == 4 and city["fill"] == ""  # three cities and "" for the missing ones
    b = next(c for c in schema["columns"] if c["name"] == "b")
    assert isinstance(b["fill"], float)
    assert schema["task"] == {"type": "classification", "num_classes": 3, "classes": ["high", "low", "mid"]}
    assert schema["input_shape"] == [1 + 1 + 4 + 1]
    json.dumps(schema)


def test_infer_schema_problem_types(tmp_path, reg_csv):
    assert infer_schema(reg_csv, "price")["task"] == {"type": "regression"}
    rows = [[i, i % 3 + 1.0 if i % 2 else i % 3 + 1] for i in range(30)]  # "1.0" and "1" are one class
    path = write_csv(tmp_path / "int.csv", ["f", "y"], rows)
    schema = infer_schema(path, "y")
    assert schema["task"] == {"type": "classification", "num_classes": 3, "classes": ["1", "2", "3"]}
    assert infer_schema(path, "y", "regression")["task"] == {"type": "regression"}
    many = write_csv(tmp_path / "many.csv", ["f", "y"], [[i, i % 25 * 10] for i in range(50)])
    assert infer_schema(many, "y")["task"]["type"] == "regression"
    forced = infer_schema(many, "y", "classification")["task"]
    assert forced["num_classes"] == 25 and forced["classes"][:3] == ["0", "10", "20"]  # numeric order
    assert normalize_label(" 3.0 ") == normalize_label("3") == "3"


def test_serving_names_are_valid_and_unique():
    assert serving_names(["a", "my col", "my_col", "_x"]) == ["a", "my_col", "my_col_2", "f_x"]


def _expect_user_error(match, *args):
    with pytest.raises(UserError, match=match):
        infer_schema(*args)


def test_user_errors(tmp_path, cls_csv):
    _expect_user_error("does not exist", str(tmp_path / "nope.csv"), "target")
    _expect_user_error("not a file", str(tmp_path), "target")
    (tmp_path / "empty.csv").write_text("")
    _expect_user_error("empty", str(tmp_path / "empty.csv"), "target")
    (tmp_path / "header.csv").write_text("a,target\n")
    _expect_user_error("no data rows", str(tmp_path / "header.csv"), "target")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81garbage\x00\xc3\x28" * 50)
    _expect_user_error("cannot be read as CSV", str(tmp_path / "binary.csv"), "target")
    (tmp_path / "ragged.csv").write_text("a,target\n1,x\n2,y,3,4\n" + "1,x\n" * 20)
    _expect_user_error("cannot be read as CSV", str(tmp_path / "ragged.csv"), "target")
    with pytest.raises(UserError, match="its columns are: a, b, city, target"):
        infer_schema(cls_csv, "label")
    one = write_csv(tmp_path / "one.csv", ["f", "y"], [[i, "same"] for i in range(20)])
    _expect_user_error("only one class", one, "y")
    holes = write_csv(tmp_path / "holes.csv", ["f", "y"], [[i, "" if i == 3 else i % 2] for i in range(20)])
    assert infer_schema(holes, "y")["notes"][0].startswith("dropped 1 row")  # a missing label drops its row
    only_label = write_csv(tmp_path / "only.csv", ["y"], [[i % 2] for i in range(20)])
    _expect_user_error("no feature columns", only_label, "y")
    words = write_csv(tmp_path / "words.csv", ["f", "y"], [[i, "cat" if i % 2 else "dog"] for i in range(20)])
    _expect_user_error("regression needs a numeric label", words, "y", "regression")
    few = write_csv(tmp_path / "few.csv", ["f", "y"], [[i, i % 2] for i in range(5)])
    _expect_user_error("too few", few, "y")
    _expect_user_error("unknown problem type", cls_csv, "target", "clustering")
    dup = write_csv(tmp_path / "dup.csv", ["f", "f", "y"], [[i, i, i % 2] for i in range(20)])
    _expect_user_error("repeats column names", dup, "y")


def test_schema_from_a_non_local_filesystem(cls_csv):
    """The CSV is read through tf.io.gfile: TensorFlow's in-process ram:// filesystem stands in for gs://."""
    import tensorflow as tf

    tf.io.gfile.makedirs("ram://test_preprocess")
    path = "ram://test_preprocess/cls.csv"
    tf.io.gfile.copy(cls_csv, path, overwrite=True)
    assert infer_schema(path, "target") == infer_schema(cls_csv, "target")
    _expect_user_error("ram://test_preprocess/nope.csv does not exist", "ram://test_preprocess/nope.csv", "target")


def test_schema_inference_reads_a_sample_of_a_large_file(tmp_path):
    """The columns come from the file's first SAMPLE_BYTES only; the label's classes, its missing values and the
    row count from a pass over the whole file. A row beyond the sample that the sample's parser would reject (extra
    fields, text in a numeric column) is not read there; a class or a missing label beyond it is found."""
    from components.preprocess import csv_table

    note = '"' + "z," * 250 + '"'  # a quoted field with commas: a sample cut inside a line would not parse
    rows = [f"{i % 7}.5,{note},{'red' if i % 2 else 'blue'},{'a' if i % 3 else 'b'}\n" for i in range(9000)]
    text = "x,note,colour,y\n" + "".join(rows)
    assert csv_table.SAMPLE_BYTES < len(text) and len(text) // len(rows[0]) < csv_table.SAMPLE_ROWS
    path = tmp_path / "big.csv"
    path.write_text(text + "oops,z,green,c,extra,fields\n" + rows[0])
    schema = infer_schema(str(path), "y")
    columns = {c["name"]: c for c in schema["columns"]}
    assert [c["kind"] for c in columns.values()] == ["numeric", "string", "string"]
    assert columns["colour"]["vocab_size"] == 2  # green is beyond the sample: the vocabulary's OOV bucket
    assert schema["task"] == {"type": "classification", "num_classes": 3, "classes": ["a", "b", "c"]}
    path.write_text(text + "1.5,z,red,\n")
    assert "dropped 1 row with a missing label 'y' (empty)" in infer_schema(str(path), "y")["notes"]


# ---- the Beam + TFT pipeline ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cls_run(cls_csv, data_dir):
    from components.preprocess.executor import run_preprocess
    schema = infer_schema(cls_csv, "target")
    out = data_dir / "cls_run"
    run_preprocess(cls_csv, schema, str(out / "examples"), str(out / "transform"), seed=0)
    return schema, str(out / "examples"), str(out / "transform")


def _sorted_split(examples_dir, split, schema):
    """A split's (x, y) rows in a canonical order: TFRecord order is the runner's choice, not ours."""
    from modelsearch.data import load_arrays as load_split
    x, y = load_split(examples_dir, split, schema)
    rows = np.concatenate([x, y[:, None].astype(np.float32)], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


@pytest.mark.slow
def test_run_preprocess_splits_and_transform(cls_run):
    from modelsearch.data import load_arrays as load_split
    schema, examples_dir, transform_dir = cls_run
    with open(os.path.join(transform_dir, "modelsearch_schema.json")) as f:
        written = json.load(f)
    counts = written["split_counts"]
    assert written["task"] == schema["task"]
    assert sum(counts.values()) == N_ROWS
    assert 0.5 * N_ROWS < counts["train"] < 0.9 * N_ROWS and counts["validation"] > 0 and counts["test"] > 0
    for split in ("train", "validation", "test"):
        assert len(os.listdir(os.path.join(examples_dir, f"Split-{split}"))) >= 1
        assert all(name.endswith(".tfrecord.gz") for name in os.listdir(os.path.join(examples_dir, f"Split-{split}")))
        x, y = load_split(examples_dir, split, schema)
        assert x.dtype == np.float32 and x.shape == (counts[split], *schema["input_shape"])
        assert y.dtype == np.int64 and y.shape == (counts[split],)
        assert set(y) <= {0, 1, 2} and np.isfinite(x).all()
    x, y = load_split(examples_dir, "train", schema)
    np.testing.assert_allclose(x[:, :2].mean(axis=0), 0, atol=1e-4)  # numeric columns: z-scores on train
    np.testing.assert_allclose(x[:, :2].std(axis=0), 1, atol=1e-3)
    np.testing.assert_allclose(x[:, 2:].sum(axis=1), 1)  # city: one-hot over vocab + OOV
    assert len(set(y)) == 3


def test_split_is_seeded_and_proportional():
    from components.preprocess.executor import SPLITS, _split_index
    lines = [f"{i},{i * 7 % 13},x" for i in range(3000)]
    first = [_split_index(line, 0, SPLITS) for line in lines]
    assert first == [_split_index(line, 0, SPLITS) for line in lines]
    assert first != [_split_index(line, 1, SPLITS) for line in lines]
    shares = np.bincount(first) / len(lines)
    np.testing.assert_allclose(shares, [0.70, 0.15, 0.15], atol=0.03)


@pytest.mark.slow
def test_regression_pipeline_and_serving(reg_csv, data_dir):
    import keras
    import tensorflow as tf
    from components.preprocess.executor import run_preprocess
    from modelsearch.data import load_arrays as load_split
    from modelsearch.export import export_serving_model
    schema = infer_schema(reg_csv, "price")
    out = data_dir / "reg_run"
    run_preprocess(reg_csv, schema, str(out / "examples"), str(out / "transform"), seed=3,
                   splits=(("train", 80), ("validation", 10), ("test", 10)))
    x, y = load_split(str(out / "examples"), "train", schema)
    assert y.dtype == np.float32 and x.shape[1:] == tuple(schema["input_shape"])
    model = keras.Sequential([keras.Input(tuple(schema["input_shape"])), keras.layers.Dense(1)])
    export_serving_model(model, str(out / "transform"), schema, str(out / "serving"))
    serve = tf.saved_model.load(str(out / "serving")).signatures["serving_default"]
    result = serve(a=tf.constant([5.0, 1.0]), city=tf.constant(["rome", "atlantis"]))
    assert set(result) == {"predictions"} and result["predictions"].shape == (2,)


@pytest.mark.slow
def test_serving_parity_on_raw_features(cls_run, cls_csv):
    """The SavedModel on raw values == the Keras model on the transformed x of the same rows."""
    import keras
    import tensorflow as tf
    from components.preprocess.csv_table import parse_line
    from components.preprocess.executor import _split_index, SPLITS
    from modelsearch.data import load_arrays as load_split
    from modelsearch.export import export_serving_model
    schema, examples_dir, transform_dir = cls_run
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(tuple(schema["input_shape"])), keras.layers.Dense(3)])
    export_dir = os.path.join(os.path.dirname(examples_dir), "serving")
    export_serving_model(model, transform_dir, schema, export_dir)
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]

    with open(cls_csv) as f:
        lines = f.read().splitlines()[1:]
    test_rows = [parse_line(schema)(line) for line in lines if _split_index(line, 0, SPLITS) == 2]
    x_test, y_test = load_split(examples_dir, "test", schema)
    assert len(test_rows) == len(x_test)
    raw = {c["serving_name"]: tf.constant([r[c["name"]] for r in test_rows],
                                          tf.float32 if c["kind"] == "numeric" else tf.string)
           for c in schema["columns"]}
    served = serve(**raw)
    expected = tf.nn.softmax(model(x_test)).numpy()
    # TFRecord order may differ from file order: compare as sets of rows, sorted by the probabilities.
    got = served["probabilities"].numpy()
    order = lambda p: np.lexsort(p.T[::-1])  # noqa: E731
    np.testing.assert_allclose(got[order(got)], expected[order(expected)], atol=1e-5)
    assert served["class_ids"].dtype == tf.int64
    names = [n.decode() for n in served["classes"].numpy()]
    assert names == [schema["task"]["classes"][i] for i in served["class_ids"].numpy()]
    labels = [schema["task"]["classes"].index(r["target"].decode()) for r in test_rows]
    assert sorted(labels) == sorted(y_test.tolist())


@pytest.mark.slow
def test_executor_do_without_orchestrator(cls_csv, cls_run, tmp_path):
    from tfx.types import artifact_utils, standard_artifacts
    from components.preprocess.component import Preprocess
    from components.preprocess.executor import Executor
    examples, transform = standard_artifacts.Examples(), standard_artifacts.TransformGraph()
    examples.uri, transform.uri = str(tmp_path / "examples"), str(tmp_path / "transform")
    Executor().Do({}, {"transformed_examples": [examples], "transform_graph": [transform]},
                  {"data_path": cls_csv, "label": "target", "problem_type": "", "seed": 0})
    assert artifact_utils.decode_split_names(examples.split_names) == ["train", "validation", "test"]
    assert os.path.exists(os.path.join(transform.uri, "transform_fn", "saved_model.pb"))
    assert os.path.exists(os.path.join(transform.uri, "modelsearch_schema.json"))
    # Same data, same seed: the same splits as run_preprocess wrote (deterministic).
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(_sorted_split(examples.uri, split, cls_run[0]),
                                      _sorted_split(cls_run[1], split, cls_run[0]))
    component = Preprocess(data_path=cls_csv, label="target", data_fingerprint="1:2")
    assert set(component.outputs) == {"transformed_examples", "transform_graph"}


@pytest.mark.slow
def test_raw_test_split_scores_a_served_model(cls_run, cls_csv):
    """Preprocess keeps the raw held-out rows; a served model is judged on them like the Keras model."""
    import keras
    from modelsearch.data import load_arrays as load_split
    from modelsearch.raw_examples import evaluate_saved_model, load_raw_split
    from modelsearch.export import export_serving_model
    schema, examples_dir, transform_dir = cls_run
    inputs, labels = load_raw_split(examples_dir, schema)
    x_test, y_test = load_split(examples_dir, "test", schema)
    assert sorted(inputs) == sorted(c["serving_name"] for c in schema["columns"])
    assert len(labels) == len(y_test) and sorted(labels) == sorted(y_test)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input(tuple(schema["input_shape"])), keras.layers.Dense(3)])
    export_dir = os.path.join(os.path.dirname(examples_dir), "serving_eval")
    export_serving_model(model, transform_dir, schema, export_dir)
    keras_accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), axis=1) == y_test))
    assert evaluate_saved_model(export_dir, examples_dir, schema) == {"accuracy": pytest.approx(keras_accuracy)}
