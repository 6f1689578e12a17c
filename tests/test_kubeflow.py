"""The Kubeflow V2 / Vertex AI package: the same DAG as the local run, a MySQL trial store whose password comes
from a Kubernetes Secret, trainer resources and retries, the run's options, Beam arguments, runnable commands."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import yaml

from modelsearch.config import SearchConfig
from modelsearch.errors import UserError
from pipelines import options
from pipelines.kubeflow_runner import POD_COMMAND, compile_pipeline, load_package, main, mysql_store

IMAGE = "ghcr.io/example/modelsearch:1"
BASE = ["compile", "--image", IMAGE, "--pipeline-root", "gs://bucket/root", "--data", "gs://bucket/data.csv",
        "--label", "y", "--mysql-host", "modelsearch-mysql.modelsearch.svc.cluster.local"]
STORE_TASKS = {"SearchGenerator", "trainer_0", "trainer_1", "Ensembler", "Distiller", "ModelSelector"}


def read(path):
    """(pipeline spec, Kubernetes platform spec) of a package: the two YAML documents kfp writes."""
    with open(path) as f:
        spec, platform = yaml.safe_load_all(f)
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def compiled(tmp_path, *extra, name="p.yaml"):
    path = str(tmp_path / name)
    assert main([*BASE, "--output", path, *extra]) == 0
    return read(path)


def executor(spec, task):
    return spec["deploymentSpec"]["executors"][spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]
                                                               ["name"]]["executorLabel"]]


def constant(spec, task, name):
    # Pipeline spec 2.1's runtimeValue.constant is a protobuf Value (numbers are floats): whole ones as text.
    value = spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][name]["runtimeValue"]["constant"]
    return str(int(value)) if isinstance(value, float) and value.is_integer() else value


@pytest.mark.parametrize("trials", [4, 300])
def test_compiles_k_trainers_whatever_the_budget(tmp_path, trials):
    path = compile_pipeline(str(tmp_path / "p.yaml"), IMAGE, "gs://bucket/root", "gs://bucket/data.csv", "y",
                            mysql_store("modelsearch-mysql", "trials"), SearchConfig(trials=trials, trainers=3),
                            push_destination="gs://bucket/serving")
    spec, _ = read(path)
    tasks = spec["root"]["dag"]["tasks"]
    # The node count does not depend on the budget: K trainers loop over the study's trials.
    assert set(tasks) == {"Preprocess", "SearchGenerator", "trainer_0", "trainer_1", "trainer_2", "Ensembler",
                          "Distiller", "ModelSelector", "Pusher"}
    assert all("SearchGenerator" in tasks[f"trainer_{k}"]["dependentTasks"] for k in range(3))
    assert {"trainer_0", "trainer_1", "trainer_2"} <= set(tasks["Ensembler"]["dependentTasks"])
    assert int(constant(spec, "trainer_0", "trials")) == trials
    assert tasks["Pusher"]["dependentTasks"] == ["ModelSelector"]
    assert spec["defaultPipelineRoot"] == "gs://bucket/root"
    executors = spec["deploymentSpec"]["executors"].values()
    assert {e["container"]["image"] for e in executors} == {IMAGE}


def test_the_package_is_one_kfp_loads(tmp_path):
    from kfp.client import client as kfp_client

    compiled(tmp_path, "--trainer-retries", "1", "--trainer-cpu", "2")
    doc = kfp_client._extract_pipeline_yaml(str(tmp_path / "p.yaml"))  # what Client.create_run_* uploads
    assert doc.pipeline_spec.pipeline_info.name == "modelsearch"
    assert doc.pipeline_spec.root.dag.tasks["trainer_0"].retry_policy.max_retry_count == 1
    assert set(doc.platform_spec.platforms["kubernetes"].deployment_spec.executors)
    assert load_package(str(tmp_path / "p.yaml"))["pipelineInfo"]["name"] == "modelsearch"


def test_the_password_reaches_the_pods_from_a_secret_and_nowhere_else(tmp_path):
    spec, secrets = compiled(tmp_path, "--mysql-secret", "store-secret", "--mysql-secret-key", "pw",
                             "--push-destination", "gs://bucket/serving")
    tasks = spec["root"]["dag"]["tasks"]
    for task in tasks:
        label = spec["components"][tasks[task]["componentRef"]["name"]]["executorLabel"]
        if task not in STORE_TASKS:  # Preprocess, Pusher: no trial store, no password
            assert label not in secrets, task
            continue
        [secret] = secrets[label]["secretAsEnv"]
        assert secret == {"secretName": "store-secret",
                          "secretNameParameter": {"runtimeValue": {"constant": "store-secret"}},
                          "keyToEnv": [{"secretKey": "pw", "envVar": "MODELSEARCH_MYSQL_PASSWORD"}]}, task
        store = json.loads(constant(spec, task, "trial_store"))
        assert store == {"mysql": {"host": "modelsearch-mysql.modelsearch.svc.cluster.local", "port": 3306,
                                   "database": "modelsearch", "user": "root",
                                   "password_env": "MODELSEARCH_MYSQL_PASSWORD"}}, task
    assert set(secrets) == {spec["components"][tasks[t]["componentRef"]["name"]]["executorLabel"] for t in STORE_TASKS}
    assert all("env" not in e["container"] for e in spec["deploymentSpec"]["executors"].values())


def test_vertex_pods_read_the_password_from_secret_manager(tmp_path):
    version = "projects/p/secrets/modelsearch-mysql/versions/latest"
    spec, _ = compiled(tmp_path, "--mysql-password-secret", version)
    for task in spec["root"]["dag"]["tasks"]:
        env = executor(spec, task)["container"].get("env", [])
        expected = [{"name": "MODELSEARCH_MYSQL_PASSWORD_SECRET_MANAGER", "value": version}]
        assert env == (expected if task in STORE_TASKS else []), task


def test_trainer_pods_ask_for_resources_and_are_retried(tmp_path):
    spec, _ = compiled(tmp_path, "--trainer-cpu", "4", "--trainer-memory", "16Gi", "--trainer-gpus", "2",
                       "--trainer-gpu-type", "NVIDIA_TESLA_T4", "--trainer-retries", "3")
    tasks = spec["root"]["dag"]["tasks"]
    for task in tasks:
        resources = executor(spec, task)["container"].get("resources")
        if not task.startswith("trainer_"):
            assert resources is None and "retryPolicy" not in tasks[task], task
            continue
        assert resources == {"resourceCpuLimit": "4", "cpuLimit": 4.0, "resourceMemoryLimit": "16Gi",
                             "memoryLimit": pytest.approx(16 * 2 ** 30 / 1e9),
                             "accelerator": {"type": "NVIDIA_TESLA_T4", "resourceType": "NVIDIA_TESLA_T4",
                                             "count": "2", "resourceCount": "2"}}, task
        assert tasks[task]["retryPolicy"] == {"maxRetryCount": 3, "backoffDuration": "60s", "backoffFactor": 2.0,
                                              "backoffMaxDuration": "3600s"}
        assert int(constant(spec, task, "threads")) == 4  # TensorFlow uses the pod's CPUs, not the node's


def test_trainer_pods_from_the_config_section(tmp_path, capsys):
    config = tmp_path / "search.json"
    config.write_text(json.dumps({"trainer_pods": {"cpu": "500m", "memory": "2G", "retries": 0}}))
    spec, _ = compiled(tmp_path, "--config", str(config))
    resources = executor(spec, "trainer_0")["container"]["resources"]
    assert resources == {"resourceCpuLimit": "500m", "cpuLimit": 0.5, "resourceMemoryLimit": "2G", "memoryLimit": 2.0}
    assert "retryPolicy" not in spec["root"]["dag"]["tasks"]["trainer_0"]
    spec, _ = compiled(tmp_path, "--config", str(config), "--trainer-cpu", "8", "--trainer-retries", "1")
    assert executor(spec, "trainer_0")["container"]["resources"]["resourceCpuLimit"] == "8"  # the option wins
    assert spec["root"]["dag"]["tasks"]["trainer_0"]["retryPolicy"]["maxRetryCount"] == 1
    spec, _ = compiled(tmp_path, "--trainer-cpu", "", "--trainer-gpus", "0")  # unset settings of a shell script
    assert "resources" not in executor(spec, "trainer_0")["container"]
    assert spec["root"]["dag"]["tasks"]["trainer_0"]["retryPolicy"]["maxRetryCount"] == 2  # the default
    capsys.readouterr()
    assert main([*BASE, "--output", str(tmp_path / "q.yaml"), "--trainer-memory", "lots"]) == 2
    assert "trainer_pods.memory must be a Kubernetes quantity" in capsys.readouterr().err


def test_compile_takes_every_option_of_run_that_shapes_the_pipeline(tmp_path):
    from pipelines.cli import make_parser
    from pipelines.kubeflow_runner import make_parser as compile_parser

    def option_strings(parser, command):
        [sub] = [a for a in parser._actions if a.dest == "command"]
        return {s for action in sub.choices[command]._actions for s in action.option_strings}

    shared = argparse_options(options.add_input_options) | argparse_options(options.add_search_options)
    run = option_strings(make_parser(), "run") - {"-h", "--help"}
    assert run - set(options.LOCAL_ONLY) == shared  # run has nothing pipeline-shaping of its own
    assert shared <= option_strings(compile_parser(), "compile")
    assert option_strings(make_parser(), "demo") >= argparse_options(options.add_search_options)

    config = tmp_path / "search.json"
    config.write_text(json.dumps({"families": ["conv"], "ensemble": {"top_k": 2}}))
    spec, _ = compiled(tmp_path, "--input-kind", "image", "--input-shape", "8,8,1", "--problem-type", "classification",
                       "--config", str(config), "--trials", "9", "--trainers", "2", "--seed", "7", "--study", "s1",
                       "--strategy", "random", "--beam-size", "4", "--p-deeper", "0.25", "--max-epochs", "5",
                       "--push-destination", "gs://bucket/serving", "--max-params", "1000",
                       "--beam-arg", "--direct_num_workers=2")
    assert [constant(spec, "Preprocess", k) for k in ("input_kind", "input_shape", "problem_type", "seed")] == \
        ["image", "8,8,1", "classification", "7"]
    assert {t for t in spec["root"]["dag"]["tasks"] if t.startswith("trainer_")} == {"trainer_0", "trainer_1"}
    assert constant(spec, "trainer_1", "trials") == "9" and constant(spec, "trainer_1", "study") == "s1"
    search = json.loads(constant(spec, "trainer_0", "search_config"))
    assert (search["strategy"], search["beam_size"], search["p_deeper"], search["max_epochs"]) == ("random", 4, 0.25, 5)
    assert search["families"] == ["conv"] and search["ensemble"]["top_k"] == 2
    assert search["push"] == {"policy": "within_budget", "max_params": 1000} and search["student"]["max_params"] == 1000
    assert constant(spec, "ModelSelector", "push_destination") == "gs://bucket/serving"
    assert "gs://bucket/serving" in json.dumps(constant(spec, "Pusher", "push_destination"))
    assert executor(spec, "Preprocess")["container"]["args"][-1] == "--direct_num_workers=2"


def argparse_options(add):
    import argparse
    parser = argparse.ArgumentParser(add_help=False)
    add(parser)
    return {s for action in parser._actions for s in action.option_strings}


def test_beam_args_reach_the_beam_steps_only(tmp_path):
    beam = ["--runner=DataflowRunner", "--project=my-project", "--temp_location=gs://bucket/tmp"]
    argv = [a for b in beam for a in ("--beam-arg", b)]
    path = str(tmp_path / "p.yaml")
    assert main([*BASE[:5], "--data", "gs://bucket/records/data.tfrecord.gz", *BASE[7:], "--output", path, *argv]) == 0
    spec, _ = read(path)
    tasks = spec["root"]["dag"]["tasks"]
    assert {"ImportExampleGen", "Preprocess"} <= set(tasks)
    for task in tasks:
        container = executor(spec, task)["container"]
        if task in ("ImportExampleGen", "Preprocess"):
            assert container["args"][-3:] == beam, task
        else:
            assert not set(beam) & set(container["args"]), task
    # ImportExampleGen keeps TFX's driver, with the same Beam arguments; its executor runs our entrypoint.
    driver = executor(spec, "ImportExampleGen")["container"]["lifecycle"]["preCacheCheck"]
    assert driver["command"][:2] == ["python", "-m"] and importlib.util.find_spec(driver["command"][2])
    assert driver["args"][-3:] == beam
    # The local run takes them the same way (argparse alone would read --runner=... as an option of its own).
    from pipelines.cli import make_parser
    args = make_parser().parse_args(options.join_beam_args(["run", "--data", "d.csv", "--output-dir", "o", *argv]))
    assert args.beam_args == beam


def test_every_pod_runs_the_entrypoint_module(tmp_path):
    spec, _ = compiled(tmp_path)
    for label, e in spec["deploymentSpec"]["executors"].items():
        assert e["container"]["command"] == list(POD_COMMAND), label
        assert e["container"]["args"][:2] == ["--executor_class_path", e["container"]["args"][1]]
    assert importlib.util.find_spec(POD_COMMAND[2]) is not None


@pytest.mark.slow
def test_a_task_runs_from_its_command_and_exits_0(tmp_path):
    """The Pusher's command from the spec as a fresh process (a model that is not blessed: nothing to push):
    TFX's entrypoint runs, writes the executor output, and the process exits 0 through os._exit."""
    spec, _ = compiled(tmp_path, "--push-destination", str(tmp_path / "serving"))
    container = executor(spec, "Pusher")["container"]
    (tmp_path / "blessing").mkdir()
    (tmp_path / "model").mkdir()
    output_file = tmp_path / "Pusher" / "executor_output.json"
    parameters = spec["root"]["dag"]["tasks"]["Pusher"]["inputs"]["parameters"]
    executor_input = {
        "inputs": {"parameterValues": {k: v["runtimeValue"]["constant"] for k, v in parameters.items()},
                   "artifacts": {
                       "model": {"artifacts": [{"name": "m", "uri": str(tmp_path / "model"),
                                                "type": {"schemaTitle": "tfx.Model"}, "metadata": {}}]},
                       "model_blessing": {"artifacts": [{"name": "b", "uri": str(tmp_path / "blessing"),
                                                         "type": {"schemaTitle": "tfx.ModelBlessing"},
                                                         "metadata": {"blessed": 0}}]}}},
        "outputs": {"artifacts": {"pushed_model": {"artifacts": [{"name": "p", "uri": str(tmp_path / "pushed"),
                                                                  "type": {"schemaTitle": "tfx.PushedModel"}}]}},
                    "outputFile": str(output_file)}}
    argv = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["command"] + container["args"]]
    assert argv[:3] == ["python", "-m", "pipelines.pod_entrypoint"]
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)  # the image's upb
    done = subprocess.run(argv, cwd=os.path.dirname(os.path.dirname(__file__)), env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not blessed" in done.stderr
    written = json.loads(output_file.read_text())
    assert written["artifacts"]["pushed_model"]["artifacts"][0]["metadata"]["pushed"] == 0
    broken = [a.replace("pusher.executor.Executor", "pusher.executor.Missing") for a in argv]
    failed = subprocess.run(broken, cwd=os.path.dirname(os.path.dirname(__file__)), env=env, capture_output=True,
                            text=True, timeout=300)
    assert failed.returncode == 1 and "Missing" in failed.stderr


def test_refuses_sqlite_relative_paths_and_json(tmp_path, capsys):
    with pytest.raises(UserError, match="must be MySQL"):
        compile_pipeline(str(tmp_path / "p.yaml"), IMAGE, "gs://b/root", "gs://b/d.csv", "y",
                         {"sqlite": "t.sqlite"}, SearchConfig())
    base = ["compile", "--image", IMAGE, "--data", "gs://b/d.csv", "--label", "y", "--mysql-host", "db"]
    assert main([*base, "--output", str(tmp_path / "p.yaml"), "--pipeline-root", "root"]) == 2
    assert "--pipeline-root 'root'" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "p.json"), "--pipeline-root", "gs://b/root"]) == 2
    assert "write a .yaml package" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "p.yaml"), "--pipeline-root", "gs://b/root",
                 "--push-destination", "serving"]) == 2
    assert "--push-destination 'serving'" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "p.yaml"), "--pipeline-root", "gs://b/root",
                 "--input-shape", "8,x"]) == 2
    assert "is not a shape" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "p.yaml"), "--pipeline-root", "gs://b/root", "--rounds", "2"]) == 2
    assert "--rounds is gone" in capsys.readouterr().err
    assert not (tmp_path / "p.yaml").exists()


def test_preprocess_temp_files_live_in_the_transform_artifact(tmp_path):
    from components.preprocess.executor import _transform_temp_dir

    transform_dir = tmp_path / "Preprocess" / "transform_graph" / "7"
    with _transform_temp_dir(str(transform_dir)) as temp_dir:
        assert os.path.dirname(temp_dir) == str(transform_dir)  # under the pipeline root, beside the graph
        os.makedirs(os.path.join(temp_dir, "tftransform_tmp"))
        open(os.path.join(temp_dir, "tftransform_tmp", "part"), "w").close()
    assert not os.path.exists(temp_dir) and os.path.isdir(transform_dir)
