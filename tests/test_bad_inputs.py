"""Every bad input of the issue and of the README, given as a user gives it: one line `modelsearch: error: ...`
naming what is wrong (the file, column, setting or option) and how to fix it, exit code 2 (1 when the run ran
but no search trial completed), no traceback, no Python or TensorFlow internals in the message, and nothing
made in the output directory.

Most cases fail before any pipeline runs and go through pipelines.cli.main in-process (fast); a few go through
the `modelsearch` console script as a user runs it (protobuf's upb, entry()'s os._exit); one runs a whole tiny
pipeline whose every trial diverges (slow).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pipelines.cli import main
from tests.input_data import encode, pattern, write_image_folder, write_tfrecords
from tests.test_pipeline_e2e import write_tiny_csv

GOOD_ROWS = "a,b,color,label\n" + "".join(f"{i % 7},{i * 0.5},{'red' if i % 2 else 'blue'},{i % 3}\n"
                                          for i in range(40))
PREFIX = "modelsearch: error: "
ARGPARSE_PREFIX = "modelsearch run: error: "  # argparse's own usage errors (a bad choice, not a number)
# What a message must never carry: a traceback, Python object reprs, TensorFlow's op context.
UGLY = ("Traceback", "<_io.", "object at 0x", "{{function_node", "__wrapped__")
# Lines that TensorFlow's C++ runtime writes to the process's stderr (the console script's forkserver imports
# TensorFlow in the background): not the product's output, so they are left out of "the last line".
RUNTIME_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
                           r"|[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] )")
SCRIPT = os.path.join(os.path.dirname(sys.executable), "modelsearch")


def error_line(err: str, code, *names: str, exit_code: int = 2, prefix: str = PREFIX) -> str:
    """Asserts the run ended as a user mistake should; returns its one error line."""
    for fragment in UGLY:
        assert fragment not in err, f"{fragment!r} in stderr:\n{err[-3000:]}"
    lines = [line for line in err.splitlines() if line.strip() and not RUNTIME_NOISE.match(line)]
    assert lines, f"nothing on stderr (exit {code})"
    last = lines[-1]
    assert last.startswith(prefix), f"the last line is not {prefix!r}...:\n{err[-3000:]}"
    assert sum("error:" in line for line in lines) == 1, f"more than one error line:\n{err[-3000:]}"
    assert code == exit_code, f"exit code {code}, expected {exit_code}: {last}"
    for name in names:
        assert name in last, f"{name!r} is not named in: {last}"
    return last


def run_cli(capsys, argv: list[str]):
    """main() in-process, as the console script calls it; argparse's usage errors exit with SystemExit(2).
    Any other exception is a traceback, and fails the test."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def run_script(argv: list[str], timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    """The `modelsearch` console script as a user runs it: protobuf's C implementation (conftest's pure-Python
    choice removed) and entry()'s os._exit."""
    env = {k: v for k, v in os.environ.items() if k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}
    return subprocess.run([SCRIPT, *argv], env=env, capture_output=True, text=True, timeout=timeout, **kwargs)


class Inputs:
    """The files a case is made of, under tmp_path; `out` is a fresh --output-dir that does not exist."""

    def __init__(self, tmp_path, monkeypatch):
        self.tmp, self.monkeypatch = tmp_path, monkeypatch
        self.out = str(tmp_path / "out")
        self.good_csv = self.write("good.csv", GOOD_ROWS)
        self.a_file = self.write("file.txt", "just a file")

    def write(self, name: str, content) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return str(path)

    def csv(self, content, name: str = "data.csv") -> list[str]:
        return ["run", "--data", self.write(name, content), "--label", "label", "--output-dir", self.out]

    def config(self, settings=None, raw=None) -> list[str]:
        path = self.write("search.json", raw if raw is not None else json.dumps(settings))
        return ["run", "--data", self.good_csv, "--label", "label", "--config", path, "--output-dir", self.out]

    def options(self, *extra: str) -> list[str]:
        return ["run", "--data", self.good_csv, "--label", "label", "--output-dir", self.out, *extra]

    def images(self, per_class: int = 6) -> str:
        return write_image_folder(self.tmp / "images", per_class=per_class)

    def image_run(self, root: str, *extra: str) -> list[str]:
        return ["run", "--data", root, "--output-dir", self.out, *extra]

    def module(self, name: str, source: str) -> None:
        """A Python module importable by the run (a user's custom blocks)."""
        self.write(f"modules/{name}.py", source)
        self.monkeypatch.syspath_prepend(str(self.tmp / "modules"))
        sys.modules.pop(name, None)


def png() -> bytes:
    return encode(pattern(0, np.random.default_rng(0)))


def rows(header: str, row, n: int = 30) -> str:
    return header + "\n" + "".join(row(i) + "\n" for i in range(n))


# ---- the battery: (argv from Inputs, what the error line names[, exit code, prefix]) --------------------------

CASES = {}


def case(name, *names, **expect):
    """Registers `make(Inputs) -> argv` as a case whose error line holds every string of `names` and passes
    every function among them; `expect`: error_line's exit_code or prefix, if not 2 and `modelsearch: error:`."""
    def register(make):
        CASES[name] = (make, names, expect)
        return make
    return register


# The output directory (checked before any work, without making it).
@case("output-dir is a file", "--output-dir", "file.txt", "is a file")
def _(t):
    return ["run", "--data", t.good_csv, "--label", "label", "--output-dir", t.a_file]


@case("output-dir under a file", "--output-dir", "file.txt/out", "cannot be made")
def _(t):
    return ["run", "--data", t.good_csv, "--label", "label", "--output-dir", t.a_file + "/out"]


@case("output-dir in /proc", "--output-dir", "/proc/modelsearch-test/out", lambda line: (
        "cannot be made" in line or "not writable" in line))
def _(t):
    # Expected: refused by the output directory's check, before any work, as a path that cannot be made
    # (root may "write" /proc by os.access, yet no directory can be made there).
    return ["run", "--data", t.good_csv, "--label", "label", "--output-dir", "/proc/modelsearch-test/out"]


# The search configuration (--config).
@case("config not JSON", "search.json", "not valid JSON")
def _(t):
    return t.config(raw="hello, I am not JSON")


@case("config truncated JSON", "search.json", "not valid JSON")
def _(t):
    return t.config(raw='{"beam_size": 3, "knobs": {"optimizer": ["adam"')


@case("config is a list", "search.json", "JSON object")
def _(t):
    return t.config(raw='["beam", 3]')


@case("config is empty", "search.json", "not valid JSON")
def _(t):
    return t.config(raw="")


@case("config not UTF-8", "search.json", "fix the file")
def _(t):
    return t.config(raw=b'{"strategy": "b\xe9am"}')


@case("config does not exist", "nope.json", "does not exist")
def _(t):
    return ["run", "--data", t.good_csv, "--label", "label", "--config", str(t.tmp / "nope.json"),
            "--output-dir", t.out]


@case("config unknown key", "search.json", "unknown setting", "beam_sise", "beam_size")
def _(t):
    return t.config({"beam_sise": 3})


@case("config unknown section key", "ensemble", "top_n", "top_k")
def _(t):
    return t.config({"ensemble": {"top_n": 3}})


BAD_SETTINGS = {
    "optimizer nope": ({"knobs": {"optimizer": ["nope"]}}, ["optimizer", "'nope'", "adam"]),
    "learning_rate -1": ({"knobs": {"learning_rate": [-1]}}, ["learning_rate", "-1", "> 0"]),
    "learning_rate 0": ({"knobs": {"learning_rate": [0.001, 0]}}, ["learning_rate", "0 is not"]),
    "learning_rate fast": ({"knobs": {"learning_rate": ["fast"]}}, ["learning_rate", "'fast'"]),
    "batch_size 0": ({"knobs": {"batch_size": [0]}}, ["batch_size", "0 is not"]),
    "batch_size 1.5": ({"knobs": {"batch_size": [1.5]}}, ["batch_size", "1.5"]),
    "dropout 1.0": ({"knobs": {"dropout": [1.0]}}, ["dropout", "1.0"]),
    "dropout -0.1": ({"knobs": {"dropout": [-0.1]}}, ["dropout", "-0.1"]),
    "knob not a list": ({"knobs": {"dropout": 0.1}}, ["dropout", "list"]),
    "unknown knob": ({"knobs": {"momentum": [0.9]}}, ["momentum", "learning_rate"]),
    "trials 0": ({"trials": 0}, ["trials", "0"]),
    "trials text": ({"trials": "six"}, ["trials", "'six'"]),
    "trainers 0": ({"trainers": 0}, ["trainers", "0"]),
    "p_deeper 2": ({"p_deeper": 2}, ["p_deeper", "2"]),
    "initial_depth [3, 1]": ({"initial_depth": [3, 1]}, ["initial_depth", "[3, 1]"]),
    "unknown strategy": ({"strategy": "genetic"}, ["'genetic'", "beam"]),
    "unknown block": ({"blocks": ["dense", "hyperdrive"]}, ["'hyperdrive'", "custom_blocks"]),
    "family without blocks for tables": ({"families": ["conv"]}, ["conv", "tabular", "families"]),
    "distillation mode": ({"distillation": {"mode": "kl"}}, ["distillation.mode", "'kl'"]),
    "within_budget without max_params": ({"push": {"policy": "within_budget"}}, ["push.max_params"]),
    "custom block without path": ({"custom_blocks": [{"name": "mine", "ranks": [1]}]}, ["'mine'", "path"]),
    "custom block path does not import": (
        {"custom_blocks": [{"name": "mine", "path": "no_such_package_xyz.block", "ranks": [1]}]},
        ["'mine'", "no_such_package_xyz", "PYTHONPATH"]),
}
for _name, (_settings, _names) in BAD_SETTINGS.items():
    case(f"config {_name}", *_names)(lambda t, s=_settings: t.config(s))
del _name, _settings, _names


@case("custom block module raises on import", "'mine'", "bad_blocks_raise", "RuntimeError", "boom at import")
def _(t):
    t.module("bad_blocks_raise", "raise RuntimeError('boom at import')\n")
    return t.config({"custom_blocks": [{"name": "mine", "path": "bad_blocks_raise.block", "ranks": [1]}]})


@case("custom block module has no such function", "'mine'", "bad_blocks_empty", "no_block")
def _(t):
    t.module("bad_blocks_empty", "def block(x):\n    return x\n")
    return t.config({"custom_blocks": [{"name": "mine", "path": "bad_blocks_empty.no_block", "ranks": [1]}]})


# Command-line options.
@case("--trials 0", "--trials", "0")
def _(t):
    return t.options("--trials", "0")


@case("--trainers -1", "--trainers", "-1")
def _(t):
    return t.options("--trainers", "-1")


@case("--trials not a number", "--trials", "'many'", prefix=ARGPARSE_PREFIX)
def _(t):
    return t.options("--trials", "many")


@case("--rounds is gone", "--rounds", "--trials")
def _(t):
    return t.options("--rounds", "3")


@case("--beam-size 0", "beam_size", "0")
def _(t):
    return t.options("--beam-size", "0")


@case("--p-deeper 2", "p_deeper", "2")
def _(t):
    return t.options("--p-deeper", "2")


@case("--max-params 0", "--max-params", "0")
def _(t):
    return t.options("--max-params", "0")


@case("--push-policy within_budget without --max-params", "within_budget", "--max-params")
def _(t):
    return t.options("--push-policy", "within_budget")


@case("--input-shape garbage", "--input-shape", "'garbage'", "28,28,1")
def _(t):
    return t.options("--input-shape", "garbage")


@case("--input-shape of zeros", "--input-shape", "'0,0'")
def _(t):
    return t.options("--input-shape", "0,0")


@case("--input-shape not matching the columns", "--input-shape 5,5", "25 values")
def _(t):
    return t.options("--input-shape", "5,5")


@case("--input-kind bogus", "--input-kind", "'bogus'", "tabular", prefix=ARGPARSE_PREFIX)
def _(t):
    return t.options("--input-kind", "bogus")


@case("--input-kind image on a non-square table", "not a square number", "--input-shape")
def _(t):
    return t.options("--input-kind", "image")


@case("--problem-type bogus", "--problem-type", "'bogus'", prefix=ARGPARSE_PREFIX)
def _(t):
    return t.options("--problem-type", "bogus")


@case("--label missing for a CSV", "--label", "column")
def _(t):
    return ["run", "--data", t.good_csv, "--output-dir", t.out]


@case("--label not a column", "'target'", "a, b, color, label")
def _(t):
    return ["run", "--data", t.good_csv, "--label", "target", "--output-dir", t.out]


@case("--problem-type regression on a text label", "regression", "'color'", "'blue'")
def _(t):
    return ["run", "--data", t.good_csv, "--label", "color", "--problem-type", "regression", "--output-dir", t.out]


@case("--push-destination is a file", "--push-destination", "file.txt", "is a file")
def _(t):
    return t.options("--push-destination", t.a_file)


# CSV data.
@case("data file missing", "nope.csv", "does not exist")
def _(t):
    return ["run", "--data", str(t.tmp / "nope.csv"), "--label", "label", "--output-dir", t.out]


@case("data folder of nothing", "neither class folders", "TFRecord")
def _(t):
    (t.tmp / "nothing").mkdir()
    (t.tmp / "nothing" / "notes.txt").write_text("x")
    return ["run", "--data", str(t.tmp / "nothing"), "--label", "label", "--output-dir", t.out]


@case("CSV empty", "data.csv", "empty")
def _(t):
    return t.csv("")


@case("CSV of blank lines", "data.csv", "empty")
def _(t):
    return t.csv("\n\n \n")


@case("CSV header only", "data.csv", "no data rows")
def _(t):
    return t.csv("a,b,label\n")


@case("CSV of 5 rows", "data.csv", "only 5 rows", "at least 10")
def _(t):
    return t.csv(rows("a,label", lambda i: f"{i},{i % 2}", n=5))


@case("CSV of random bytes", "data.csv", "UTF-8 CSV")
def _(t):
    return t.csv(np.random.default_rng(0).bytes(4000))


@case("CSV that is a PNG", "photo.csv", "UTF-8 CSV")
def _(t):
    return t.csv(png(), name="photo.csv")


@case("CSV in latin-1", "data.csv", "UTF-8")
def _(t):
    return t.csv(rows("a,city,label", lambda i: f"{i},Z\xfcrich,{i % 2}").encode("latin-1"))


@case("CSV with a multi-line quoted field", "'note'", "several lines")
def _(t):
    return t.csv(rows("a,note,label", lambda i: f'{i},"line one\nline two",{i % 2}'))


@case("CSV with duplicate column names", "repeats column names", "(a)")
def _(t):
    return t.csv(rows("a,a,label", lambda i: f"{i},{i * 2},{i % 2}"))


@case("CSV semicolon-separated with ragged lines", "';'", "as many fields as the header")
def _(t):
    return t.csv(rows("a;b;label", lambda i: f"{i};{i}{';x' if i % 3 == 0 else ''};{i % 2}"))


@case("CSV label with one class", "'label'", "one class", "'x'")
def _(t):
    return t.csv(rows("a,label", lambda i: f"{i},x"))


@case("CSV all labels missing", "'label'", "no values")
def _(t):
    return t.csv(rows("a,label", lambda i: f"{i},{'' if i % 2 else 'NA'}"))


@case("CSV of the label only", "no feature columns", "'label'")
def _(t):
    return t.csv(rows("label", lambda i: f"{i % 2}"))


# Image folders.
@case("image folder with one class", "1 class folder", "at least two")
def _(t):
    root = t.images()
    shutil.rmtree(os.path.join(root, "b")), shutil.rmtree(os.path.join(root, "c"))
    return t.image_run(root)


@case("image folder with an empty class folder", "images/empty", "has no images")
def _(t):
    root = t.images()
    os.makedirs(os.path.join(root, "empty"))
    return t.image_run(root)


@case("image folder with a corrupt image", "a/x.png", "cannot be read as an image", "valid PNG or JPEG")
def _(t):
    root = t.images()
    with open(os.path.join(root, "a", "x.png"), "wb") as f:
        f.write(np.random.default_rng(1).bytes(300))
    return t.image_run(root)


@case("image folder with a truncated image", "a/cut.png", "cannot be read as an image")
def _(t):
    root = t.images()
    data = encode(pattern(0, np.random.default_rng(0), size=32))
    with open(os.path.join(root, "a", "cut.png"), "wb") as f:
        f.write(data[: len(data) // 2])
    return t.image_run(root)


@case("image folder with an empty image file", "a/empty.png", "cannot be read as an image")
def _(t):
    root = t.images()
    open(os.path.join(root, "a", "empty.png"), "wb").close()
    return t.image_run(root)


@case("image folder with a GIF named .png", "a/anim.png", "GIF", "PNG or JPEG")
def _(t):
    root = t.images()
    with open(os.path.join(root, "a", "anim.png"), "wb") as f:
        f.write(encode(pattern(0, np.random.default_rng(0)), "GIF"))
    return t.image_run(root)


@case("image folder with images of different sizes", "different sizes", "--input-shape")
def _(t):
    root = t.images()
    with open(os.path.join(root, "b", "big.png"), "wb") as f:
        f.write(encode(pattern(1, np.random.default_rng(0), size=9)))
    return t.image_run(root)


@case("image folder with too few images", "only 6 images")
def _(t):
    return t.image_run(t.images(per_class=2))


@case("image folder with --input-kind sequence", "image, not sequence", "--input-kind")
def _(t):
    return t.image_run(t.images(), "--input-kind", "sequence")


@case("image folder with 2 channels", "--input-shape", "channels")
def _(t):
    return t.image_run(t.images(), "--input-shape", "8,8,2")


# TFRecords.
@case("TFRecords that are random bytes", "bad.tfrecord", "cannot be read as TFRecords", "corrupted record")
def _(t):
    return ["run", "--data", t.write("bad.tfrecord", np.random.default_rng(2).bytes(2000)), "--label", "label",
            "--output-dir", t.out]


@case("TFRecords that are a CSV", "table.tfrecord", "cannot be read as TFRecords")
def _(t):
    return ["run", "--data", t.write("table.tfrecord", GOOD_ROWS), "--label", "label", "--output-dir", t.out]


@case("gzipped TFRecords that are not gzip", "bad.tfrecord.gz", "cannot be read as TFRecords", "*.gz")
def _(t):
    return ["run", "--data", t.write("bad.tfrecord.gz", np.random.default_rng(3).bytes(2000)), "--label", "label",
            "--output-dir", t.out]


@case("TFRecords of records that are not tf.Examples", "junk.tfrecord", "not tf.Examples")
def _(t):
    import tensorflow as tf
    path = str(t.tmp / "junk.tfrecord")
    rng = np.random.default_rng(4)
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(20):
            writer.write(rng.bytes(50))
    return ["run", "--data", path, "--label", "label", "--output-dir", t.out]


@case("TFRecords file empty", "empty.tfrecord", "only 0 examples")
def _(t):
    return ["run", "--data", t.write("empty.tfrecord", b""), "--label", "label", "--output-dir", t.out]


@case("TFRecords without the label feature", "'target'", "label, source, values")
def _(t):
    path = write_tfrecords(t.tmp / "seq.tfrecord", kind="sequence")
    return ["run", "--data", path, "--label", "target", "--output-dir", t.out]


@case("TFRecords without --label", "--label", "feature")
def _(t):
    return ["run", "--data", write_tfrecords(t.tmp / "seq.tfrecord", kind="sequence"), "--output-dir", t.out]


@case("TFRecords file missing", "nope.tfrecord", "does not exist")
def _(t):
    return ["run", "--data", str(t.tmp / "nope.tfrecord"), "--label", "label", "--output-dir", t.out]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line(name, tmp_path, monkeypatch, capsys):
    make, names, expect = CASES[name]
    t = Inputs(tmp_path, monkeypatch)
    argv = make(t)
    code, err = run_cli(capsys, argv)
    texts = [n for n in names if isinstance(n, str)]
    line = error_line(err, code, *texts, **expect)
    for check in (n for n in names if callable(n)):
        assert check(line), line
    out = argv[argv.index("--output-dir") + 1]
    if out == t.out:
        assert not os.path.exists(t.out), f"{os.listdir(t.out)} made in the output directory by a bad input"


def test_damaged_trial_store_is_one_line_and_left_as_it_was(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    garbage = np.random.default_rng(5).bytes(8192)
    (out / "trials.sqlite").write_bytes(garbage)
    code, err = run_cli(capsys, ["run", "--data", str(Inputs(tmp_path, None).good_csv), "--label", "label",
                                 "--output-dir", str(out), "--trials", "1"])
    line = error_line(err, code, "trials.sqlite", "cannot be opened", "--output-dir")
    assert sorted(os.listdir(out)) == ["trials.sqlite"] and (out / "trials.sqlite").read_bytes() == garbage
    # The commands that read a study say the same.
    code, err = run_cli(capsys, ["trials", "--output-dir", str(out)])
    error_line(err, code, "trials.sqlite", "cannot be opened")
    assert (out / "trials.sqlite").read_bytes() == garbage
    # MLMD's SQL is not the user's business: the reason is short (`modelsearch trials` cuts it at " query: ").
    assert "CREATE TABLE" not in line and len(line) < 400, line


def test_reading_a_study_that_is_not_there_is_one_line(tmp_path, capsys):
    for command in (["trials"], ["show", "1"], ["report"]):
        code, err = run_cli(capsys, [*command, "--output-dir", str(tmp_path / "never-run")])
        error_line(err, code, "never-run", "holds no study", "modelsearch run")
    assert not (tmp_path / "never-run").exists()


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_a_csv_separated_otherwise_is_sniffed(tmp_path, delimiter):
    """A semicolon (tab, |) separated CSV is no mistake: its schema reads like the comma-separated one's."""
    from components.preprocess.schema import infer_schema

    path = tmp_path / "data.csv"
    path.write_text(GOOD_ROWS.replace(",", delimiter))
    schema = infer_schema(str(path), "label")
    assert schema["delimiter"] == delimiter
    assert [c["name"] for c in schema["columns"]] == ["a", "b", "color"] and schema["csv_header"][-1] == "label"
    assert schema["task"] == {"type": "classification", "num_classes": 3, "classes": ["0", "1", "2"]}
    assert f"read as {delimiter!r}-separated" in schema["notes"]
    comma = infer_schema(str(Inputs(tmp_path, None).good_csv), "label")
    assert schema["columns"] == comma["columns"] and schema["input_shape"] == comma["input_shape"]


def test_bad_submit_input_from_the_readme_is_one_line(tmp_path, capsys):
    """README: `submit` with a missing or `.json` package, or an unreachable host: one line and exit code 2."""
    import socket

    from pipelines.kubeflow_runner import main as kubeflow_main

    json_package = tmp_path / "old.json"
    json_package.write_text("{}")
    yaml_package = tmp_path / "notes.yaml"
    yaml_package.write_text("just: [some, yaml]\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    for argv, names in [
        (["--package", str(tmp_path / "missing.yaml"), "--host", "http://kfp"], ["missing.yaml", "does not exist"]),
        (["--package", str(json_package), "--host", "http://kfp"], ["old.json", ".yaml"]),
        (["--package", str(yaml_package), "--host", "http://kfp"], ["notes.yaml", "not a compiled pipeline package"]),
    ]:
        try:
            code = kubeflow_main(["submit", *argv])
        except SystemExit as e:
            code = e.code
        error_line(capsys.readouterr().err, code, *names)
    # An unreachable host, with a real package.
    package = str(tmp_path / "modelsearch.yaml")
    assert kubeflow_main(["compile", "--output", package, "--image", "ghcr.io/example/modelsearch:1",
                          "--pipeline-root", "gs://bucket/root", "--data", "gs://bucket/data.csv", "--label", "y",
                          "--mysql-host", "db.example"]) == 0
    capsys.readouterr()
    code = kubeflow_main(["submit", "--package", package, "--host", closed])
    error_line(capsys.readouterr().err, code, closed, "failed")


# ---- the console script, as a user runs it ---------------------------------------------------------------------

@pytest.mark.parametrize("problem", ["output-dir is a file", "--input-kind bogus", "corrupt image",
                                     "TFRecords of random bytes", "config not JSON"])
def test_console_script_bad_input_is_one_line(tmp_path, problem):
    t = Inputs(tmp_path, None)
    if problem == "output-dir is a file":
        argv, names, prefix = t.options()[:-2] + ["--output-dir", t.a_file], ["file.txt", "is a file"], PREFIX
    elif problem == "--input-kind bogus":
        argv, names, prefix = t.options("--input-kind", "bogus"), ["--input-kind", "'bogus'"], ARGPARSE_PREFIX
    elif problem == "corrupt image":
        root = t.images()
        with open(os.path.join(root, "b", "x.png"), "wb") as f:
            f.write(np.random.default_rng(1).bytes(300))
        argv, names, prefix = t.image_run(root), ["b/x.png", "cannot be read as an image"], PREFIX
    elif problem == "TFRecords of random bytes":
        path = t.write("bad.tfrecord", np.random.default_rng(2).bytes(2000))
        argv = ["run", "--data", path, "--label", "label", "--output-dir", t.out]
        names, prefix = ["bad.tfrecord", "cannot be read as TFRecords"], PREFIX
    else:
        argv, names, prefix = t.config(raw='{"trials": 2,'), ["search.json", "not valid JSON"], PREFIX
    done = run_script(argv, cwd=tmp_path)
    error_line(done.stderr, done.returncode, *names, prefix=prefix)
    assert not os.path.exists(t.out)


@pytest.mark.slow
def test_every_trial_diverging_is_one_line_and_exit_1(tmp_path):
    """A learning rate of 1e12 makes every trial's loss non-finite: the run ends with exit 1 and one line saying
    that no search trial completed and why, with the summary written."""
    data = tmp_path / "tiny.csv"
    write_tiny_csv(data)
    config = tmp_path / "search.json"
    # Networks of hidden blocks (named: no linear model first, which a learning rate alone cannot overflow).
    config.write_text(json.dumps({"knobs": {"optimizer": ["sgd"], "learning_rate": [1e12]}, "max_epochs": 3,
                                  "blocks": ["dense", "residual_dense", "bottleneck"]}))
    out = tmp_path / "out"
    done = run_script(["run", "--data", str(data), "--label", "kind", "--output-dir", str(out), "--config",
                       str(config), "--trials", "2", "--trainers", "1"], timeout=900, cwd=tmp_path)
    line = error_line(done.stderr, done.returncode, "no search trial completed", "diverged", exit_code=1)
    assert "modelsearch trials --output-dir" in line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_completed"] == 0 and summary["trials_diverged"] == 2, summary
