"""Bad input: one line naming the problem and the fix, exit code 2, no traceback, nothing lost."""
import json
import os
import subprocess
import sys

import pytest

from pipelines.cli import main

GOOD_ROWS = "a,b,color,label\n" + "".join(f"{i % 7},{i * 0.5},{'red' if i % 2 else 'blue'},{i % 3}\n"
                                          for i in range(40))


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(GOOD_ROWS)
    return path


def test_missing_file(tmp_path, capsys):
    code, err = run_cli(capsys, "run", "--data", str(tmp_path / "nope.csv"), "--label", "y",
                        "--output-dir", str(tmp_path / "o"))
    assert code == 2 and "nope.csv" in err and "Traceback" not in err


def test_empty_file(tmp_path, capsys):
    (tmp_path / "e.csv").write_text("")
    code, err = run_cli(capsys, "run", "--data", str(tmp_path / "e.csv"), "--label", "y",
                        "--output-dir", str(tmp_path / "o"))
    assert code == 2 and "empty" in err.lower()


def test_missing_label_column(csv_file, tmp_path, capsys):
    code, err = run_cli(capsys, "run", "--data", str(csv_file), "--label", "target", "--output-dir", str(tmp_path / "o"))
    assert code == 2 and "target" in err and "label" in err


def test_label_with_one_class(tmp_path, capsys):
    path = tmp_path / "one.csv"
    path.write_text("a,label\n" + "".join(f"{i},x\n" for i in range(30)))
    code, err = run_cli(capsys, "run", "--data", str(path), "--label", "label", "--output-dir", str(tmp_path / "o"))
    assert code == 2 and "class" in err


def test_unknown_block_in_config(csv_file, tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"blocks": ["dense", "hyperdrive"]}))
    code, err = run_cli(capsys, "run", "--data", str(csv_file), "--label", "label", "--config", str(config),
                        "--output-dir", str(tmp_path / "o"))
    assert code == 2 and "hyperdrive" in err


def test_malformed_config(csv_file, tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text('{"beam_size": 3,')
    code, err = run_cli(capsys, "run", "--data", str(csv_file), "--label", "label", "--config", str(config),
                        "--output-dir", str(tmp_path / "o"))
    assert code == 2 and "JSON" in err
    config.write_text('{"beam_size": -1}')
    code, err = run_cli(capsys, "run", "--data", str(csv_file), "--label", "label", "--config", str(config),
                        "--output-dir", str(tmp_path / "o"))
    assert code == 2 and "beam_size" in err


def test_bad_custom_block_path(csv_file, tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"custom_blocks": [{"name": "mine", "path": "no_such_pkg.block", "ranks": [1]}]}))
    code, err = run_cli(capsys, "run", "--data", str(csv_file), "--label", "label", "--config", str(config),
                        "--output-dir", str(tmp_path / "o"))
    assert code == 2 and "no_such_pkg" in err


def test_help_is_fast_and_exits_zero():
    # --help must not import TensorFlow: a fresh interpreter shows it.
    out = subprocess.run([sys.executable, "-c", "import sys; from pipelines.cli import make_parser; "
                          "make_parser(); print('tensorflow' in sys.modules)"], capture_output=True, text=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("extra, expected", [
    (["--rounds", "3", "--trainers", "2"], "--rounds is gone"),
    (["--trials", "0"], "--trials must be at least 1"),
    (["--trainers", "0"], "--trainers must be at least 1"),
    (["--config", "TRAINERS"], "trainers must be a positive whole number"),
    (["--max-params", "0"], "--max-params must be at least 1"),
    (["--push-destination", "FILE"], "is a file"),
    (["--config", "CONFIG"], "distillation.mode must be one of"),
])
def test_bad_push_and_exploit_settings(csv_file, tmp_path, capsys, extra, expected):
    (tmp_path / "file").write_text("x")
    (tmp_path / "c.json").write_text(json.dumps({"distillation": {"mode": "kl"}}))
    (tmp_path / "t.json").write_text(json.dumps({"trainers": 0}))
    extra = [{"FILE": str(tmp_path / "file"), "CONFIG": str(tmp_path / "c.json"),
              "TRAINERS": str(tmp_path / "t.json")}.get(a, a) for a in extra]
    code, err = run_cli(capsys, "run", "--data", str(csv_file), "--label", "label",
                        "--output-dir", str(tmp_path / "o"), *extra)
    assert code == 2 and expected in err and "Traceback" not in err


# ---- image folders, TFRecords and shaped tables: clear errors, before any pipeline -----------------------------

def _image_folder(tmp_path, per_class=6):
    from tests.input_data import write_image_folder
    return write_image_folder(tmp_path / "images", per_class=per_class)


@pytest.mark.parametrize("problem, extra, expected", [
    ("empty_class", [], "has no images"),
    ("unreadable", [], "bad.png cannot be read as an image"),
    ("mixed_sizes", [], "different sizes"),
    (None, ["--input-kind", "sequence"], "its input kind is image, not sequence"),
    (None, ["--input-shape", "8,8,2"], "channels"),
])
def test_image_folder_errors(tmp_path, capsys, problem, extra, expected):
    root = _image_folder(tmp_path)
    if problem == "empty_class":
        os.makedirs(os.path.join(root, "empty"))
    elif problem == "unreadable":
        with open(os.path.join(root, "a", "bad.png"), "wb") as f:
            f.write(b"not a png")
    elif problem == "mixed_sizes":
        from tests.input_data import encode, pattern
        import numpy as np
        with open(os.path.join(root, "b", "big.png"), "wb") as f:
            f.write(encode(pattern(1, np.random.default_rng(0), size=9)))
    code, err = run_cli(capsys, "run", "--data", root, "--output-dir", str(tmp_path / "o"), *extra)
    assert code == 2 and expected in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing was started


@pytest.mark.parametrize("extra, expected", [
    (["--input-shape", "5,5"], "--input-shape 5,5 needs 25 values per row, but"),
    (["--input-shape", "2,x"], "is not a shape"),
    (["--input-kind", "image"], "not a square number of pixels"),
])
def test_shaped_table_errors(csv_file, tmp_path, capsys, extra, expected):
    code, err = run_cli(capsys, "run", "--data", str(csv_file), "--label", "label", "--output-dir",
                        str(tmp_path / "o"), *extra)
    assert code == 2 and expected in err and "Traceback" not in err


def test_label_required_except_for_image_folders(csv_file, tmp_path, capsys):
    code, err = run_cli(capsys, "run", "--data", str(csv_file), "--output-dir", str(tmp_path / "o"))
    assert code == 2 and "pass --label" in err


def test_demo_datasets_are_listed():
    from pipelines.cli import DEMO_NAMES, make_parser
    from pipelines.demo_data import DEMOS
    assert set(DEMO_NAMES) == set(DEMOS) >= {"digits", "digits-images", "mnist1d"}
    assert make_parser().parse_args(["demo", "--output-dir", "o", "--dataset", "mnist1d"]).dataset == "mnist1d"


def test_demo_data_is_made_locally(tmp_path):
    from components.preprocess.schema import infer_schema
    from pipelines.demo_data import write_digits_images, write_mnist1d_csv
    images = write_digits_images(str(tmp_path / "digits_images"))
    assert sorted(os.listdir(images)) == [str(d) for d in range(10)]
    schema = infer_schema(images, "digit")
    assert schema["input_shape"] == [8, 8, 1] and schema["num_images"] == 1797
    sequences = write_mnist1d_csv(str(tmp_path / "mnist1d.csv"), num_samples=200)
    schema = infer_schema(sequences, "digit", None, "sequence", "40")
    assert schema["input_shape"] == [40, 1] and schema["task"]["num_classes"] == 10
