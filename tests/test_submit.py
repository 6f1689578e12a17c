"""Submit, to Kubeflow Pipelines and to Vertex AI, as far as no network allows: the real kfp Client and the real
aiplatform PipelineJob talk to a local HTTP endpoint that records their requests and answers what they need
(tests/fake_endpoints.py)."""
import json
import os
import socket

import pytest
from fake_endpoints import endpoint, google_credentials, kfp_answers, vertex_answers  # noqa: F401 (a fixture)

from pipelines.kubeflow_runner import main

IMAGE = "ghcr.io/example/modelsearch:1"
SECRET_MANAGER_VERSION = "projects/p/secrets/modelsearch-mysql/versions/latest"


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("package") / "modelsearch.yaml")
    assert main(["compile", "--output", path, "--image", IMAGE, "--pipeline-root", "gs://bucket/root",
                 "--data", "gs://bucket/data.csv", "--label", "y", "--mysql-host", "db.example",
                 "--push-destination", "gs://bucket/serving", "--trainer-retries", "1"]) == 0
    return path


# -- Kubeflow Pipelines ------------------------------------------------------------------------------------

def test_submit_starts_a_kfp_run_of_the_package(package, capsys):
    with endpoint(kfp_answers(experiment=False)) as (url, requests):
        assert main(["submit", "--package", package, "--host", url, "--experiment", "nightly"]) == 0
    assert "started run r-1" in capsys.readouterr().out
    [created] = [r for r in requests if r["method"] == "POST" and r["path"] == "/apis/v2beta1/experiments"]
    assert created["body"]["display_name"] == "nightly"
    [run] = [r["body"] for r in requests if r["method"] == "POST" and r["path"] == "/apis/v2beta1/runs"]
    assert run["experiment_id"] == "e-1" and run["display_name"].startswith("modelsearch ")
    # The uploaded package: the pipeline spec, and the platform spec that hands the pods the Secret.
    spec, platform = run["pipeline_spec"]["pipeline_spec"], run["pipeline_spec"]["platform_spec"]
    assert spec["pipelineInfo"]["name"] == "modelsearch"
    assert spec["root"]["dag"]["tasks"]["trainer_1"]["retryPolicy"]["maxRetryCount"] == 1
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["trainer_0_executor"]["secretAsEnv"][0]["secretName"] == "modelsearch-mysql"
    stores = [json.loads(task["inputs"]["parameters"]["trial_store"]["runtimeValue"]["constant"])["mysql"]
              for task in spec["root"]["dag"]["tasks"].values() if "trial_store" in task["inputs"]["parameters"]]
    assert stores and all(s["password_env"] == "MODELSEARCH_MYSQL_PASSWORD" and "password" not in s for s in stores)


def test_skip_if_running_starts_nothing_while_a_run_of_the_pipeline_goes_on(package, capsys):
    def listed(state, name="modelsearch"):
        return {"run_id": f"r-{state}", "display_name": f"{name} 2026-01-01 03-00-00", "state": state,
                "experiment_id": "e-1", "pipeline_spec": {"pipeline_spec": {"pipelineInfo": {"name": name}}}}

    going = [listed("SUCCEEDED"), listed("RUNNING", name="other"), listed("RUNNING")]
    with endpoint(kfp_answers(runs=going)) as (url, requests):
        assert main(["submit", "--package", package, "--host", url, "--skip-if-running"]) == 0
    out = capsys.readouterr().out
    assert "not started" in out and "r-RUNNING" in out and "RUNNING" in out
    assert not [r for r in requests if r["method"] == "POST"]  # no experiment, no run created
    [listing] = [r for r in requests if r["path"] == "/apis/v2beta1/runs"]
    assert listing["query"]["experiment_id"] == ["e-1"]

    done = [listed("SUCCEEDED"), listed("FAILED"), listed("PENDING", name="other")]
    with endpoint(kfp_answers(runs=done)) as (url, requests):
        assert main(["submit", "--package", package, "--host", url, "--skip-if-running"]) == 0
    assert "started run r-1" in capsys.readouterr().out
    with endpoint(kfp_answers(experiment=False)) as (url, requests):  # the first run of all
        assert main(["submit", "--package", package, "--host", url, "--skip-if-running"]) == 0
    assert "started run r-1" in capsys.readouterr().out


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_bad_submit_input_is_one_line_and_exit_2(package, tmp_path, capsys):
    json_package = tmp_path / "old.json"
    json_package.write_text(json.dumps({"displayName": "modelsearch", "pipelineSpec": {}, "runtimeConfig": {}}))
    not_a_package = tmp_path / "notes.yaml"
    not_a_package.write_text("just: [some, yaml]\n")
    local_root = tmp_path / "local.yaml"  # a pipeline root on a volume the pods mount: Kubeflow only
    assert main(["compile", "--output", str(local_root), "--image", IMAGE, "--pipeline-root", "/mnt/root",
                 "--data", "/mnt/data.csv", "--label", "y", "--mysql-host", "db"]) == 0
    capsys.readouterr()
    cases = {
        "does not exist": ["--package", str(tmp_path / "missing.yaml"), "--host", "http://kfp"],
        "not a .yaml package": ["--package", str(json_package), "--host", "http://kfp"],
        "not a compiled pipeline package": ["--package", str(not_a_package), "--host", "http://kfp"],
        "submit to one target": ["--package", package],
        "submit to one target:": ["--package", package, "--host", "http://kfp", "--vertex-project", "p",
                                  "--vertex-region", "r"],
        "needs both --vertex-project and --vertex-region": ["--package", package, "--vertex-project", "p"],
        "--network is Vertex AI's": ["--package", package, "--host", "http://kfp", "--network", "n"],
        "Connection refused": ["--package", package, "--host", closed_port_url()],
        "--vertex-region mars1 is not a Vertex AI region": ["--package", package, "--vertex-project", "p",
                                                            "--vertex-region", "mars1"],
        "Vertex AI needs a gs:// one": ["--package", str(local_root), "--vertex-project", "p",
                                        "--vertex-region", "us-central1"],
    }
    for expected, argv in cases.items():
        assert main(["submit", *argv]) == 2, expected
        err = capsys.readouterr().err
        assert expected in err and err.startswith("modelsearch: error: ") and err.count("\n") == 1, (expected, err)
    answers = kfp_answers()

    def broken(request):  # the endpoint is up, but creating the run fails
        if request["method"] == "POST" and request["path"] == "/apis/v2beta1/runs":
            return 500, {"error": "database is down"}
        return answers(request)

    with endpoint(broken) as (url, _):
        assert main(["submit", "--package", package, "--host", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"modelsearch: error: submitting to {url} failed: HTTP 500") and err.count("\n") == 1, err
    assert "database is down" in err


# -- Vertex AI ----------------------------------------------------------------------------------------------

VERTEX = ["--vertex-project", "proj", "--vertex-region", "us-central1"]


def test_submit_creates_a_vertex_pipeline_job(package, google_credentials, capsys):
    with endpoint(vertex_answers()) as (url, requests):
        google_credentials(url)
        assert main(["submit", "--package", package, *VERTEX, "--vertex-endpoint", url,
                     "--service-account", "runner@proj.iam.gserviceaccount.com",
                     "--network", "projects/123/global/networks/cloudsql-vpc"]) == 0
    assert "started pipeline job projects/proj/locations/us-central1/pipelineJobs/modelsearch-" in capsys.readouterr().out
    [created] = [r for r in requests if r["method"] == "POST" and r["path"].endswith("/pipelineJobs")]
    job = created["body"]
    assert created["headers"]["authorization"].startswith("Bearer ")
    assert job["serviceAccount"] == "runner@proj.iam.gserviceaccount.com"
    assert job["network"] == "projects/123/global/networks/cloudsql-vpc"
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/root"
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "modelsearch"
    assert job["pipelineSpec"]["root"]["dag"]["tasks"]["trainer_0"]["retryPolicy"]["maxRetryCount"] == 1
    assert "platforms" not in json.dumps(job)  # Vertex has no Kubernetes: the platform spec stays home


def test_vertex_skip_if_running(package, google_credentials, capsys):
    running = {"name": "projects/proj/locations/us-central1/pipelineJobs/modelsearch-1", "state": "PIPELINE_STATE_RUNNING",
               "pipelineSpec": {"pipelineInfo": {"name": "modelsearch"}}}
    with endpoint(vertex_answers(jobs=[running])) as (url, requests):
        google_credentials(url)
        assert main(["submit", "--package", package, *VERTEX, "--vertex-endpoint", url, "--skip-if-running"]) == 0
    out = capsys.readouterr().out
    assert "not started" in out and "pipelineJobs/modelsearch-1" in out and "PIPELINE_STATE_RUNNING" in out
    assert not [r for r in requests if r["method"] == "POST" and r["path"].endswith("/pipelineJobs")]
    [listing] = [r for r in requests if r["method"] == "GET" and r["path"].endswith("/pipelineJobs")]
    query = listing["query"]["filter"][0]
    assert 'pipeline_name="modelsearch"' in query and 'state="PIPELINE_STATE_RUNNING"' in query
    with endpoint(vertex_answers()) as (url, requests):
        google_credentials(url)
        assert main(["submit", "--package", package, *VERTEX, "--vertex-endpoint", url, "--skip-if-running"]) == 0
    assert "started pipeline job" in capsys.readouterr().out


def test_vertex_pods_read_the_password_from_secret_manager(google_credentials, monkeypatch):
    from pipelines.pod_entrypoint import secrets_to_env

    monkeypatch.setenv("MODELSEARCH_MYSQL_PASSWORD", "")  # unset for secrets_to_env; restored after the test
    monkeypatch.setenv("MODELSEARCH_MYSQL_PASSWORD_SECRET_MANAGER", SECRET_MANAGER_VERSION)
    with endpoint(vertex_answers()) as (url, requests):
        google_credentials(url)
        assert secrets_to_env(api_endpoint=url) == ["MODELSEARCH_MYSQL_PASSWORD"]
    assert os.environ["MODELSEARCH_MYSQL_PASSWORD"] == "s3cret"
    [access] = [r for r in requests if "secrets" in r["path"]]
    assert access["path"] == f"/v1/{SECRET_MANAGER_VERSION}:access"
    assert access["headers"]["authorization"].startswith("Bearer ")
    assert secrets_to_env(api_endpoint=url) == []  # set already: nothing read again
