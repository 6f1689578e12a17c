"""End to end: the local TFX pipeline on tiny data, through the CLI, continued, and the demo."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from modelsearch.trialstore import TrialStore
from pipelines.cli import main


# The Distiller's shortest setting (one student tried: the searched trial nearest the best), for end-to-end tests
# whose subject is not the student: each student try is a trained, exported model.
ONE_STUDENT = {"student": {"widths": [], "smallest": 0}}


def write_tiny_csv(path, n=150, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write("x1,x2,x3,shape,kind\n")
        for _ in range(n):
            x = rng.normal(size=3)
            shape = rng.choice(["round", "square"])
            label = "a" if x[0] + (shape == "round") > 0.5 else ("b" if x[1] > 0 else "c")
            f.write(f"{x[0]:.4f},{x[1]:.4f},{x[2]:.4f},{shape},{label}\n")


@pytest.mark.slow
def test_local_pipeline_two_trainers_on_a_budget_then_continue(tmp_path, capsys):
    data = tmp_path / "tiny.csv"
    write_tiny_csv(data)
    out = tmp_path / "run"
    argv = ["run", "--data", str(data), "--label", "kind", "--output-dir", str(out), "--trials", "4",
            "--trainers", "2", "--max-epochs", "3", "--seed", "1"]
    serving = tmp_path / "serving"
    assert main(argv + ["--push-destination", str(serving)]) == 0
    err = capsys.readouterr().err
    store = TrialStore({"sqlite": str(out / "trials.sqlite")})
    # The students tried: near the best, the smallest others, the best at narrower widths (fewer if two coincide).
    students = [t for t in store.trials("default") if t.kind == "student"]
    assert 1 < len(students) <= 5 and all(t.state == "completed" for t in students)
    epoch = re.compile(r"\[modelsearch\] trial \d+ epoch \d+/3: ")
    ended = [line for line in err.splitlines() if line.startswith("[modelsearch] trial ") and not epoch.match(line)]
    assert len(ended) == 4 + 2 + len(students)  # search trials, replicas of the best, students: one line as each ends
    assert re.search(r"^\[modelsearch\] trial \d+ epoch 1/3: loss ", err, re.M)  # and one line per epoch
    assert err.count(" replica from ") == 2 and err.count(" student from ") == len(students)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_completed"] == 4 and summary["trials_failed"] == 0
    best = summary["best"]
    assert {"trial_id", "architecture", "metrics", "num_params", "saved_model"} <= set(best)
    assert 0 <= best["metrics"]["test_accuracy"] <= 1 and best["num_params"] > 0

    # The exploit phase: an ensemble, a student distilled from it, and a push to TF Serving's layout.
    ensemble, student, push = summary["ensemble"], summary["student"], summary["push"]
    assert ensemble["metrics"]["test_accuracy"] >= 0 and student["teacher_id"] == ensemble["trial_id"]
    assert student["num_params"] < ensemble["num_params"]
    assert f"[modelsearch] student: kept trial {student['trial_id']} (" in err
    assert push["pushed"] and push["reason"] == "nothing pushed before"
    assert os.path.dirname(push["version_path"]) == str(serving)
    assert os.path.exists(os.path.join(push["version_path"], "saved_model.pb"))

    search = lambda: [t for t in store.trials("default") if t.kind == "search"]  # noqa: E731
    assert {t.kind for t in store.trials("default")} == {"search", "replica", "ensemble", "student"}
    trials = search()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    # Two trainer processes trained them, each trial in a process of its own (recorded peak memory).
    assert len({t.worker for t in trials}) == 2 and all(t.peak_rss_mb > 0 for t in trials)
    assert all(t.parent_id is None for t in trials[:2])  # beam search starts with random architectures
    children = [t for t in trials if t.parent_id is not None]
    assert children and all(t.mutation for t in children)
    assert any(t.num_inherited > 0 for t in children)
    assert len({json.dumps(t.spec, sort_keys=True) for t in trials}) == 4
    # The Pareto front of validation accuracy against parameters (no latency target: two criteria), smallest
    # first; the most accurate search trial ends it.
    front = summary["pareto"]
    assert front and all(set(e) == {"trial_id", "num_params", "train_seconds", "metrics"} for e in front)
    assert all(set(e["metrics"]) == {"val_accuracy", "objective"} for e in front)
    assert {e["trial_id"] for e in front} <= {t.trial_id for t in trials if t.state == "completed"}
    accuracies = [e["metrics"]["val_accuracy"] for e in front]
    assert [e["num_params"] for e in front] == sorted(e["num_params"] for e in front)
    assert accuracies == sorted(set(accuracies))
    assert accuracies[-1] == max(t.metrics["val_accuracy"] for t in trials if t.state == "completed")

    # The exported model serves on raw CSV columns.
    import tensorflow as tf
    served = tf.saved_model.load(best["saved_model"]).signatures["serving_default"](
        x1=tf.constant([0.5, -1.0]), x2=tf.constant([0.1, 0.2]), x3=tf.constant([0.0, 0.0]),
        shape=tf.constant(["round", "square"]))
    np.testing.assert_allclose(served["probabilities"].numpy().sum(axis=1), 1.0, rtol=1e-5)

    # Bad input against the same output directory loses nothing already recorded.
    recorded = len(store.trials("default"))
    assert main(argv[:-2] + ["--beam-size", "0"]) == 2
    assert len(store.trials("default")) == recorded

    # The budget is the study's: running again with the same one trains nothing more.
    again = argv[:5] + ["--output-dir", str(out), "--trainers", "2", "--max-epochs", "3"]
    assert main(again + ["--trials", "4"]) == 0
    assert len(search()) == 4
    # A larger budget continues the study: new trials numbered on, no architecture repeated.
    assert main(again + ["--trials", "6"]) == 0
    trials = search()
    assert len(trials) == 6 and sorted(t.number for t in trials[4:]) == [4, 5]
    assert len({json.dumps(t.spec, sort_keys=True) for t in trials}) == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_completed"] == 6
    assert summary["push"] == {"pushed": False, "reason": "no push destination given (--push-destination DIR)",
                               "version_path": None}


@pytest.mark.slow
def test_demo_at_small_settings(tmp_path):
    """The `modelsearch` console script as a user runs it: protobuf's upb implementation (conftest's pure-Python
    choice removed; upb has crashed at exit after a tf.Transform trace) and entry()'s os._exit, which must
    still report every line and exit 0."""
    out = tmp_path / "demo"
    script = os.path.join(os.path.dirname(sys.executable), "modelsearch")
    env = {k: v for k, v in os.environ.items() if k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}
    done = subprocess.run([script, "demo", "--output-dir", str(out), "--trials", "2", "--trainers", "2",
                           "--max-epochs", "4"], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[modelsearch] push: pushed to" in done.stderr  # flushed before os._exit
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_completed"] == 2
    assert summary["best"]["metrics"]["test_accuracy"] > 0.5  # digits: 10 classes, chance is 0.1
    assert os.path.isdir(summary["best"]["saved_model"])
