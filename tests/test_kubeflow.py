"""The Kubeflow V2 / Vertex AI pipeline spec: the same DAG as the local runner, MySQL trial store, no secrets."""
import json

import pytest

from modelsearch.config import SearchConfig
from modelsearch.errors import UserError
from pipelines.kubeflow_runner import compile_pipeline, main, mysql_store

IMAGE = "ghcr.io/example/modelsearch:1"


@pytest.mark.parametrize("trials", [4, 300])
def test_compiles_k_trainers_whatever_the_budget(tmp_path, trials):
    path = compile_pipeline(str(tmp_path / "p.json"), IMAGE, "gs://bucket/root", "gs://bucket/data.csv", "y",
                            mysql_store("modelsearch-mysql", "trials"), SearchConfig(trials=trials, trainers=3),
                            push_destination="gs://bucket/serving")
    spec = json.loads(open(path).read())["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    # The node count does not depend on the budget: K trainers loop over the study's trials.
    assert set(tasks) == {"Preprocess", "SearchGenerator", "trainer_0", "trainer_1", "trainer_2", "Ensembler",
                          "Distiller", "ModelSelector", "Pusher"}
    assert all("SearchGenerator" in tasks[f"trainer_{k}"]["dependentTasks"] for k in range(3))
    assert {"trainer_0", "trainer_1", "trainer_2"} <= set(tasks["Ensembler"]["dependentTasks"])
    parameters = tasks["trainer_0"]["inputs"]["parameters"]
    assert int(parameters["trials"]["runtimeValue"]["constantValue"]["intValue"]) == trials
    assert tasks["Pusher"]["dependentTasks"] == ["ModelSelector"]
    executors = spec["deploymentSpec"]["executors"].values()
    assert {e["container"]["image"] for e in executors} == {IMAGE}
    text = open(path).read()
    assert "password_env" in text and "MODELSEARCH_MYSQL_PASSWORD" in text and '\\"password\\"' not in text


def test_refuses_sqlite_and_relative_paths(tmp_path, capsys):
    with pytest.raises(UserError, match="must be MySQL"):
        compile_pipeline(str(tmp_path / "p.json"), IMAGE, "gs://b/root", "gs://b/d.csv", "y",
                         {"sqlite": "t.sqlite"}, SearchConfig())
    code = main(["compile", "--output", str(tmp_path / "p.json"), "--image", IMAGE, "--pipeline-root", "root",
                 "--data", "gs://b/d.csv", "--label", "y", "--mysql-host", "db"])
    assert code == 2 and "--pipeline-root 'root'" in capsys.readouterr().err
    assert main(["submit", "--package", str(tmp_path / "missing.json"), "--host", "http://kfp"]) == 2
