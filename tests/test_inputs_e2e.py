"""Each input route end to end through the CLI and the local TFX pipeline, at tiny size: an image folder,
TFRecords (through ImportExampleGen), a table whose columns form an image. The search proposes only the
input kind's block families, and the pushed model serves on raw inputs."""
import json
import os

import pytest

import blocks
from modelsearch.kinds import KIND_FAMILIES
from modelsearch.trialstore import TrialStore
from pipelines.cli import main
from tests.input_data import write_image_folder, write_pixel_csv, write_tfrecords
from tests.test_pipeline_e2e import ONE_STUDENT

QUICK = {"ensemble": {"replicas": 0, "methods": ["average"]}, **ONE_STUDENT}


def _route(name, tmp_path):
    """(data path, extra CLI arguments, expected kind, the served input's name)."""
    if name == "image_folder":
        return write_image_folder(tmp_path / "images", per_class=20, jpeg_every=4), [], "image", "image"
    if name == "tfrecord_sequence":
        os.makedirs(tmp_path / "records")  # a folder of TFRecord files
        write_tfrecords(tmp_path / "records" / "seq.tfrecord.gz", kind="sequence")
        return str(tmp_path / "records"), ["--label", "label", "--input-kind", "sequence"], "sequence", "values"
    data = write_pixel_csv(tmp_path / "pixels.csv")
    return data, ["--label", "y", "--input-shape", "6,6,1"], "image", "pixels"


@pytest.mark.slow
@pytest.mark.parametrize("route", ["image_folder", "tfrecord_sequence", "shaped_csv"])
def test_route_end_to_end(route, tmp_path, capsys):
    from modelsearch.raw_examples import load_raw_split, serve
    data, extra, kind, input_name = _route(route, tmp_path)
    (tmp_path / "quick.json").write_text(json.dumps(QUICK))
    out = tmp_path / "run"
    assert main(["run", "--data", data, *extra, "--output-dir", str(out), "--trials", "2", "--trainers", "2",
                 "--max-epochs", "2", "--config", str(tmp_path / "quick.json"),
                 "--push-destination", str(tmp_path / "serving")]) == 0
    err = capsys.readouterr().err
    assert f"on {kind} inputs" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_completed"] == 2 and summary["trials_failed"] == 0
    trials = [t for t in TrialStore({"sqlite": str(out / "trials.sqlite")}).trials("default") if t.kind == "search"]
    for trial in trials:
        assert {blocks.get(b["name"]).family for b in trial.spec["blocks"]} <= set(KIND_FAMILIES[kind])
    push = summary["push"]
    assert push["pushed"], push
    if route == "tfrecord_sequence":
        assert (out / "pipeline" / "ImportExampleGen").is_dir()
    # The pushed model serves on the raw held-out inputs Preprocess kept (what ModelSelector judged it on).
    [examples] = [os.path.join(root, d) for root, dirs, _ in os.walk(out / "pipeline" / "Preprocess")
                  for d in dirs if d == "Raw-test"]
    [schema_file] = [os.path.join(root, f) for root, _, files in os.walk(out / "pipeline" / "Preprocess")
                     for f in files if f == "modelsearch_schema.json"]
    with open(schema_file) as f:
        schema = json.load(f)
    inputs, labels = load_raw_split(os.path.dirname(examples), schema)
    assert list(inputs) == [input_name]
    served = serve(push["version_path"], inputs)
    assert served["class_ids"].shape == labels.shape
