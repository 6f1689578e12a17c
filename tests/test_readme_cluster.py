"""The README's cluster sections are what runs: each ```bash block of "### Kubeflow Pipelines" and "### Vertex AI
Pipelines", copied as it stands, compiles a package kfp loads and submits it to a local recording endpoint
(tests/fake_endpoints.py) that plays the KFP API and Vertex AI's.

How a block is run, the same for both:
- the markdown's headings delimit the section; backslash-continued lines are joined; shlex splits the words;
- an uppercase placeholder (IMAGE, BUCKET, PROJECT, PIPELINE_SA, ...) becomes its lowercase, hyphenated self
  (gs://BUCKET/root -> gs://bucket/root); a Vertex AI accelerator's name (NVIDIA_TESLA_T4) is a value, not one;
- the commands run in tmp_path, so `--output modelsearch.yaml` and `--package modelsearch.yaml` land there;
- `uv run python -m pipelines.kubeflow_runner ARGS` runs as pipelines.kubeflow_runner.main(ARGS); the endpoint
  the README names (--host's value, or Vertex's default endpoint) is the local one (--vertex-endpoint URL);
- kubectl / gcloud / printf lines are not ours to run: they are checked to be there and to fit the rest
  (the Secret the pods read, the secret version, the service account); any other command fails the test."""
import os
import re
import shlex

import yaml
from fake_endpoints import endpoint, google_credentials, kfp_answers, vertex_answers  # noqa: F401 (a fixture)

from pipelines import kubeflow_runner

ROOT = os.path.join(os.path.dirname(__file__), "..")
RUNNER = ["uv", "run", "python", "-m", "pipelines.kubeflow_runner"]
NOT_OURS = {"kubectl", "gcloud", "printf"}
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9_]+\b")


def section(title: str) -> str:
    """The text under a markdown heading, up to the next heading of its level or above (not inside code)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        lines = f.read().splitlines()
    level, found, body, fenced = len(title.split()[0]), False, [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"^(#+) ", line)
        if heading and found and len(heading.group(1)) <= level:
            break
        if found:
            body.append(line)
        found = found or line == title
    assert found, f"README.md has no heading {title!r}"
    return "\n".join(body)


def bash_commands(title: str) -> list[list[str]]:
    """The commands of the section's ```bash blocks: one list of words per command (a pipeline's parts apart)."""
    blocks = re.findall(r"^```bash\n(.*?)^```$", section(title), flags=re.S | re.M)
    assert blocks, f"{title}: no ```bash block"
    commands = []
    for block in blocks:
        for line in re.sub(r"\\\n", " ", block).splitlines():
            words = shlex.split(line, comments=True)
            while words:
                part = words.index("|") if "|" in words else len(words)
                commands.append(words[:part])
                words = words[part + 1:]
    return commands


def accelerator(word: str) -> bool:
    from google.cloud.aiplatform_v1.types import AcceleratorType

    return word in AcceleratorType.__members__


def filled(word: str) -> str:
    return PLACEHOLDER.sub(lambda m: m.group(0) if accelerator(m.group(0)) else m.group(0).lower().replace("_", "-"),
                           word)


def value(argv: list[str], option: str, default=None):
    """The value `option` has in argv (the last one given), else default."""
    found = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == option]
    found += [word.split("=", 1)[1] for word in argv if word.startswith(option + "=")]
    return found[-1] if found else default


def run_block(title: str, tmp_path, monkeypatch, answers, credentials=None):
    """Runs the section's commands in tmp_path; returns (the commands not ours, {"compile"/"submit": (its argv with
    the placeholders filled, the requests it made)}, the package's (pipeline spec, platform spec))."""
    monkeypatch.chdir(tmp_path)
    skipped, ran = [], {}
    for words in bash_commands(title):
        if words[0] in NOT_OURS:
            skipped.append(words)
            continue
        assert words[:len(RUNNER)] == RUNNER, f"{title}: a command the README should not ask for: {shlex.join(words)}"
        argv = [filled(w) for w in words[len(RUNNER):]]
        assert argv[0] not in ran, f"{title}: {argv[0]} twice"
        if argv[0] == "compile":
            assert kubeflow_runner.main(argv) == 0, f"{title}: {shlex.join(words)}"
            ran["compile"] = argv, []
            continue
        assert argv[0] == "submit", f"{title}: {shlex.join(words)}"
        with endpoint(answers(argv)) as (url, requests):
            if credentials is not None:
                credentials(url)
            local = list(argv)
            if "--host" in local:
                local[local.index("--host") + 1] = url
            else:
                local += ["--vertex-endpoint", url]
            assert kubeflow_runner.main(local) == 0, f"{title}: {shlex.join(words)}"
        ran["submit"] = argv, requests
    assert set(ran) == {"compile", "submit"}, f"{title}: the block compiles and submits"
    package = value(ran["compile"][0], "--output")
    assert value(ran["submit"][0], "--package") == package, f"{title}: the submit sends what the compile wrote"
    return skipped, ran, read_package(package)


def read_package(path: str):
    """(pipeline spec, platform spec) of a compiled package, after kfp's own loader accepted it."""
    from kfp.client import client as kfp_client

    assert os.path.isfile(path) and os.path.dirname(os.path.abspath(path)) == os.getcwd()  # in tmp_path
    doc = kfp_client._extract_pipeline_yaml(path)  # what Client.create_run_* uploads
    assert doc.pipeline_spec.pipeline_info.name == kubeflow_runner.PIPELINE_NAME
    with open(path) as f:
        spec, platform = yaml.safe_load_all(f)
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def store_executors(spec) -> list[dict]:
    """The containers of the tasks that open the trial store."""
    tasks = spec["root"]["dag"]["tasks"].values()
    labels = {spec["components"][t["componentRef"]["name"]]["executorLabel"] for t in tasks
              if "trial_store" in t["inputs"]["parameters"]}
    assert labels
    return [spec["deploymentSpec"]["executors"][label]["container"] for label in sorted(labels)]


def created(requests, method, suffix):
    found = [r for r in requests if r["method"] == method and r["path"].endswith(suffix)]
    assert len(found) == 1, [(r["method"], r["path"]) for r in requests]
    return found[0]


def test_the_kubeflow_block_runs_as_written(tmp_path, monkeypatch, capsys):
    skipped, ran, (spec, secrets) = run_block("### Kubeflow Pipelines", tmp_path, monkeypatch, lambda argv: kfp_answers())
    compile_argv, (submit_argv, requests) = ran["compile"][0], ran["submit"]
    assert "started run r-1" in capsys.readouterr().out
    run = created(requests, "POST", "/apis/v2beta1/runs")["body"]
    assert run["experiment_id"] == "e-1" and run["display_name"].startswith("modelsearch ")
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "modelsearch"
    assert value(submit_argv, "--host") == yaml_settings()["KFP_HOST"]  # the endpoint the scheduled job uses
    assert "--skip-if-running" in submit_argv

    # The first command makes the Secret the compiled pods read, from the overlay's password file.
    secret, key = value(compile_argv, "--mysql-secret", "modelsearch-mysql"), value(compile_argv, "--mysql-secret-key", "password")
    [create] = [w for w in skipped if w[:1] == ["kubectl"] and "create" in w and "secret" in w]
    assert create[create.index("generic") + 1] == secret and value(create, "-n") == "kubeflow"
    source = value(create, "--from-file")
    assert source.startswith(key + "=") and source.split("=", 1)[1] == "kustomize/overlays/gcp/mysql-password.txt"
    assert os.path.basename(source) in yaml_overlay_password_files()
    assert skipped == [create]
    for label, platform in secrets.items():
        [ref] = platform["secretAsEnv"]
        assert ref["secretName"] == secret and ref["keyToEnv"] == [{"envVar": "MODELSEARCH_MYSQL_PASSWORD",
                                                                   "secretKey": key}], label
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["trainer_0"]["retryPolicy"]["maxRetryCount"] == int(value(compile_argv, "--trainer-retries"))


def test_the_vertex_block_runs_as_written(tmp_path, monkeypatch, capsys, google_credentials):
    def answers(argv):
        return vertex_answers(project=value(argv, "--vertex-project"), region=value(argv, "--vertex-region"))

    skipped, ran, (spec, _) = run_block("### Vertex AI Pipelines", tmp_path, monkeypatch, answers, google_credentials)
    compile_argv, (submit_argv, requests) = ran["compile"][0], ran["submit"]
    assert "started pipeline job projects/project/locations/us-central1/pipelineJobs/modelsearch-" in capsys.readouterr().out
    job = created(requests, "POST", "/v1/projects/project/locations/us-central1/pipelineJobs")["body"]
    assert job["serviceAccount"] == value(submit_argv, "--service-account") == "pipeline-sa@project.iam.gserviceaccount.com"
    assert job["network"] == value(submit_argv, "--network")
    assert job["runtimeConfig"]["gcsOutputDirectory"] == value(compile_argv, "--pipeline-root")
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "modelsearch"
    assert "platforms" not in str(job)
    assert "--skip-if-running" in submit_argv

    # The secret the gcloud lines create and open to the job's service account is the one the pods read.
    version = value(compile_argv, "--mysql-password-secret")
    name = re.fullmatch(r"projects/[^/]+/secrets/([^/]+)/versions/\w+", version).group(1)
    [printf, create, binding] = skipped
    assert printf[0] == "printf" and create[:4] == ["gcloud", "secrets", "create", name]
    assert value(create, "--data-file") == "-"  # the password from the pipe, not in the shell's history
    assert binding[:4] == ["gcloud", "secrets", "add-iam-policy-binding", name]
    assert value(binding, "--role") == "roles/secretmanager.secretAccessor"
    assert filled(value(binding, "--member")) == "serviceAccount:" + value(submit_argv, "--service-account")
    for container in store_executors(spec):
        assert {"name": "MODELSEARCH_MYSQL_PASSWORD_SECRET_MANAGER", "value": version} in container["env"]
    resources = spec["deploymentSpec"]["executors"]["trainer_0_executor"]["container"]["resources"]
    assert resources["accelerator"]["type"] == value(compile_argv, "--trainer-gpu-type") == "NVIDIA_TESLA_T4"
    assert accelerator("NVIDIA_TESLA_T4") and not accelerator("IMAGE")


def yaml_settings() -> dict:
    with open(os.path.join(ROOT, "kustomize", "base", "kustomization.yaml")) as f:
        [generator] = yaml.safe_load(f)["configMapGenerator"]
    return dict(line.split("=", 1) for line in generator["literals"])


def yaml_overlay_password_files() -> set:
    with open(os.path.join(ROOT, "kustomize", "overlays", "gcp", "kustomization.yaml")) as f:
        [generator] = yaml.safe_load(f)["secretGenerator"]
    return {entry.split("=", 1)[1] for entry in generator["files"]}


def test_placeholders():
    assert filled("gs://BUCKET/root") == "gs://bucket/root"
    assert filled("PIPELINE_SA@PROJECT.iam.gserviceaccount.com") == "pipeline-sa@project.iam.gserviceaccount.com"
    assert filled("NVIDIA_TESLA_T4") == "NVIDIA_TESLA_T4" and filled("16Gi") == "16Gi"
