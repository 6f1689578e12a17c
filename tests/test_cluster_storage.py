"""The whole pipeline with its data, pipeline root and push destination on Cloud Storage (gs://), through a
local emulator that TensorFlow's and Beam's own clients both talk to (tests/gcs_emulator.py). Nothing may be
written to local disk but the output directory's trial store, summary and log, and the run's temp dir."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.gcs_emulator import GcsEmulator
from tests.test_pipeline_e2e import ONE_STUDENT, write_tiny_csv

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "modelsearch-test"


def _local_files(root: str) -> set:
    return {os.path.relpath(os.path.join(folder, name), root)
            for folder, _, names in os.walk(root) for name in names}


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    """The emulator, with this process's environment pointed at it (the test reads the bucket with TensorFlow)."""
    folder = tmp_path / "emulator"
    folder.mkdir()
    with GcsEmulator(str(folder)) as emulator:
        emulator.create_bucket(BUCKET)
        for name, value in emulator.env.items():
            monkeypatch.setenv(name, value)
        yield emulator


@pytest.mark.cluster
@pytest.mark.slow
def test_whole_pipeline_on_cloud_storage(tmp_path, gcs):
    import tensorflow as tf

    local = tmp_path / "tiny.csv"
    write_tiny_csv(local)
    data = f"gs://{BUCKET}/data/tiny.csv"
    tf.io.gfile.makedirs(os.path.dirname(data))
    tf.io.gfile.copy(str(local), data)
    os.remove(local)
    config = tmp_path / "search.json"
    # Every kind of model written to the bucket once: search trials, a replica, the ensemble, one student.
    config.write_text(json.dumps({"max_epochs": 3, "patience": 2, "ensemble": {"replicas": 1},
                                  **ONE_STUDENT}))

    out, cwd, scratch = tmp_path / "out", tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir(), scratch.mkdir()
    repo_before = _local_files(REPO_ROOT)
    root, serving = f"gs://{BUCKET}/root", f"gs://{BUCKET}/serving"
    # The console script as a user runs it (protobuf's upb, os._exit), in an empty working directory.
    script = os.path.join(os.path.dirname(sys.executable), "modelsearch")
    env = {k: v for k, v in os.environ.items() if k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}
    env["TMPDIR"] = str(scratch)
    done = subprocess.run([script, "run", "--data", data, "--label", "kind", "--output-dir", str(out),
                           "--pipeline-root", root, "--push-destination", serving, "--config", str(config),
                           "--trials", "3", "--trainers", "2"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-4000:]

    # Local disk: the trial store, TFX's metadata and the summary in --output-dir; nothing in the working
    # directory (no "gs:" folder made by os.makedirs on a URI), nothing new in the repository.
    assert _local_files(str(cwd)) == set()
    assert {f for f in _local_files(str(out))} == {"trials.sqlite", "tfx_metadata.sqlite", "study.json",
                                                   "summary.json", "modelsearch.log"}
    assert _local_files(REPO_ROOT) - repo_before <= {f for f in _local_files(REPO_ROOT) if "__pycache__" in f}

    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_completed"] == 3 and summary["trials_failed"] == 0
    for model in (summary["best"], summary["ensemble"], summary["student"]):
        assert model["saved_model"].startswith(root + "/")
        assert tf.io.gfile.exists(os.path.join(model["saved_model"], "saved_model.pb"))
    push = summary["push"]
    assert push["pushed"] and push["version_path"].startswith(serving + "/")

    # The pushed model serves, read back from the bucket.
    served = tf.saved_model.load(push["version_path"]).signatures["serving_default"](
        x1=tf.constant([0.5, -1.0]), x2=tf.constant([0.1, 0.2]), x3=tf.constant([0.0, 0.0]),
        shape=tf.constant(["round", "square"]))
    np.testing.assert_allclose(served["probabilities"].numpy().sum(axis=1), 1.0, rtol=1e-5)
    # The transformed examples Beam wrote are in the bucket too.
    written = [os.path.join(folder, name) for folder, _, names in tf.io.gfile.walk(root) for name in names]
    assert any("/Preprocess/transformed_examples/" in f and "/Split-train/" in f for f in written), written[:20]
