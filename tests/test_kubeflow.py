"""The Kubeflow V2 / Vertex AI pipeline spec: the same DAG as the local runner, MySQL trial store, no secrets."""
import json

import pytest

from modelsearch.config import SearchConfig
from modelsearch.errors import UserError
from pipelines.kubeflow_runner import compile_pipeline, main, mysql_store

IMAGE = "ghcr.io/example/modelsearch:1"


def test_compiles_the_whole_dag_with_round_barriers(tmp_path):
    path = compile_pipeline(str(tmp_path / "p.json"), IMAGE, "gs://bucket/root", "gs://bucket/data.csv", "y",
                            mysql_store("modelsearch-mysql", "trials"), SearchConfig(), rounds=2,
                            trainers_per_round=2, push_destination="gs://bucket/serving")
    spec = json.loads(open(path).read())["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"Preprocess", "search_generator_r0", "search_generator_r1", "trainer_r0_0", "trainer_r0_1",
                          "trainer_r1_0", "trainer_r1_1", "Ensembler", "Distiller", "ModelSelector", "Pusher"}
    # A round's generator waits for every trainer of the round before; the Ensembler for the last round.
    assert {"trainer_r0_0", "trainer_r0_1"} <= set(tasks["search_generator_r1"]["dependentTasks"])
    assert {"trainer_r1_0", "trainer_r1_1"} <= set(tasks["Ensembler"]["dependentTasks"])
    assert tasks["Pusher"]["dependentTasks"] == ["ModelSelector"]
    executors = spec["deploymentSpec"]["executors"].values()
    assert {e["container"]["image"] for e in executors} == {IMAGE}
    text = open(path).read()
    assert "password_env" in text and "MODELSEARCH_MYSQL_PASSWORD" in text and '\\"password\\"' not in text


def test_refuses_sqlite_and_relative_paths(tmp_path, capsys):
    with pytest.raises(UserError, match="must be MySQL"):
        compile_pipeline(str(tmp_path / "p.json"), IMAGE, "gs://b/root", "gs://b/d.csv", "y",
                         {"sqlite": "t.sqlite"}, SearchConfig(), 1, 1)
    code = main(["compile", "--output", str(tmp_path / "p.json"), "--image", IMAGE, "--pipeline-root", "root",
                 "--data", "gs://b/d.csv", "--label", "y", "--mysql-host", "db"])
    assert code == 2 and "--pipeline-root 'root'" in capsys.readouterr().err
    assert main(["submit", "--package", str(tmp_path / "missing.json"), "--host", "http://kfp"]) == 2
