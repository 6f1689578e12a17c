"""The compiled Kubeflow V2 package, run step by step as KFP's launcher runs it: every task a fresh process
from its container command and arguments, sharing only the pipeline root and a real MySQL (MariaDB) trial
store. Proves the image entrypoint and the spec work without any state of the compiling process."""
import csv
import json
import os
import re

import numpy as np
import pytest

from modelsearch.trialstore import TrialStore
from pipelines.kubeflow_runner import PASSWORD_ENV, main
from tests.kfp_launcher import REPO_ROOT, KfpLauncher
from tests.test_pipeline_e2e import write_tiny_csv

SECRET, SECRET_KEY = "test-trial-store", "db-password"


def pod_environment() -> dict:
    """This environment as the image has it: protobuf as container/Dockerfile sets it (unset: upb, not the
    tests' pure-Python choice in conftest.py), and no password but the one the Secret hands the pods."""
    env = {k: v for k, v in os.environ.items() if k not in ("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", PASSWORD_ENV)}
    with open(os.path.join(REPO_ROOT, "container", "Dockerfile")) as f:
        protobuf = re.search(r"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=(\w+)", f.read())
    if protobuf:
        env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = protobuf.group(1)
    return env


@pytest.mark.cluster
@pytest.mark.slow
def test_compiled_package_runs_task_by_task_on_mariadb(tmp_path, mysql_store_config, capsys):
    mysql = mysql_store_config["mysql"]
    data, serving, package = tmp_path / "tiny.csv", tmp_path / "serving", tmp_path / "modelsearch.yaml"
    write_tiny_csv(data)
    (tmp_path / "search.json").write_text(json.dumps(
        {"trials": 3, "trainers": 2, "max_epochs": 3, "patience": 2, "ensemble": {"replicas": 1}}))
    assert main(["compile", "--output", str(package), "--image", "modelsearch:test",
                 "--pipeline-root", str(tmp_path / "root"), "--data", str(data), "--label", "kind",
                 "--config", str(tmp_path / "search.json"), "--push-destination", str(serving),
                 "--mysql-host", mysql["host"], "--mysql-port", str(mysql["port"]), "--mysql-user", mysql["user"],
                 "--mysql-database", mysql["database"], "--mysql-secret", SECRET,
                 "--mysql-secret-key", SECRET_KEY]) == 0, capsys.readouterr().err

    # The test plays Kubernetes: the Secret the spec names holds the password.
    launcher = KfpLauncher(str(package), secrets={SECRET: {SECRET_KEY: mysql["password"]}},
                           env=pod_environment(), work_dir=str(tmp_path / "pods"), timeout=1500)
    run = launcher.run()
    tasks = run.tasks
    assert set(tasks) == {"Preprocess", "SearchGenerator", "trainer_0", "trainer_1", "Ensembler", "Distiller",
                          "ModelSelector", "Pusher"}
    # Every task its own process; the two trainers at the same time.
    assert len({t.pid for t in tasks.values()}) == len(tasks) and os.getpid() not in {t.pid for t in tasks.values()}
    trainers = [tasks["trainer_0"], tasks["trainer_1"]]
    assert max(t.started for t in trainers) < min(t.finished for t in trainers)

    # The study: the budget of search trials, trained by both trainer tasks, then the exploit stages.
    store = TrialStore(mysql_store_config)
    trials = store.trials("default")
    search = [t for t in trials if t.kind == "search"]
    assert sorted(t.number for t in search) == [0, 1, 2] and all(t.state == "completed" for t in search)
    assert {int(t.worker.rsplit(":", 1)[1]) for t in search} == {t.pid for t in trainers}
    exploit = [t.kind for t in trials if t.kind in ("ensemble", "student")]
    assert exploit[0] == "ensemble" and len(exploit) > 2 and set(exploit[1:]) == {"student"}  # students tried
    assert all(t.state == "completed" for t in trials)
    [decision] = store.decisions("default", "push")
    assert decision["pushed"] and decision["reason"] == "nothing pushed before"

    # Pushed under the destination (TF Serving's layout), and it serves raw CSV rows.
    pushed = tasks["Pusher"].outputs["pushed_model"]["metadata"]
    [version] = os.listdir(serving)
    assert pushed["pushed"] == 1 and pushed["pushed_destination"] == str(serving / version)
    assert (serving / version / "saved_model.pb").exists()
    import tensorflow as tf

    with open(data) as f:
        rows = list(csv.DictReader(f))[:5]
    served = tf.saved_model.load(str(serving / version)).signatures["serving_default"](
        **{name: tf.constant([float(r[name]) for r in rows]) for name in ("x1", "x2", "x3")},
        shape=tf.constant([r["shape"] for r in rows]))
    probabilities = served["probabilities"].numpy()
    assert probabilities.shape == (5, 3)  # classes a, b, c
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    # The password reached the pods from the Secret only: not in the package, the arguments or any output.
    password = mysql["password"]
    assert password not in package.read_text()
    assert PASSWORD_ENV in package.read_text() and SECRET in package.read_text()
    for task in tasks.values():
        assert password not in " ".join(task.argv)
        assert password not in task.log_text(), task.name
