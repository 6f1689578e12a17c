"""The cluster manifests: every overlay renders with `kubectl kustomize` from a password file alone, the
settings they read exist and point where the pipeline's pods can reach, and the scheduled job's command
really compiles the pipeline."""
import base64
import importlib.metadata
import os
import re
import secrets
import shlex
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "kustomize")
OVERLAYS = sorted(os.listdir(os.path.join(ROOT, "overlays")))


def load(path):
    with open(os.path.join(ROOT, path)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def settings():
    [kustomization] = load("base/kustomization.yaml")
    [generator] = kustomization["configMapGenerator"]
    return dict(line.split("=", 1) for line in generator["literals"])


def one(docs, kind, name=None):
    [doc] = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return doc


def cron_container(cron):
    [container] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return container


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """{overlay: (its rendered text, its documents, the password its file held)}, from a copy of kustomize/
    with a fresh random password file in each overlay, the way a user deploys it."""
    # CI has kubectl (it renders these manifests): a missing one is a failure, not a skip.
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed; the overlays cannot be rendered"
    copy = tmp_path_factory.mktemp("deploy") / "kustomize"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("mysql-password.txt"))
    out = {}
    for overlay in OVERLAYS:
        password = secrets.token_urlsafe(18)
        (copy / "overlays" / overlay / "mysql-password.txt").write_text(password)
        result = subprocess.run([kubectl, "kustomize", str(copy / "overlays" / overlay)],
                                capture_output=True, text=True)
        assert result.returncode == 0, f"overlay {overlay} does not render: {result.stderr}"
        out[overlay] = (result.stdout, [d for d in yaml.safe_load_all(result.stdout) if d], password)
    return out


def test_every_resource_exists_and_every_key_read_is_set():
    [kustomization] = load("base/kustomization.yaml")
    keys = settings()
    for resource in kustomization["resources"]:
        for doc in load(f"base/{resource}"):
            text = yaml.safe_dump(doc)
            for key in re.findall(r"configMapKeyRef:\s*\n\s*key: (\w+)", text):
                assert key in keys, f"{resource} reads {key}, which modelsearch-settings does not set"
    kinds = {d["kind"] for r in kustomization["resources"] for d in load(f"base/{r}")}
    assert {"Deployment", "Service", "CronJob", "PersistentVolumeClaim"} <= kinds
    [cron] = [d for d in load("base/search-schedule.yaml") if d["kind"] == "CronJob"]
    for key in re.findall(r"\$(\w+)", cron_container(cron)["args"][0]):
        assert key in keys, f"the scheduled job reads ${key}, which modelsearch-settings does not set"


def test_every_overlay_renders_into_the_namespace(rendered):
    assert OVERLAYS == ["gcp", "local"]
    for overlay, (_, docs, _) in rendered.items():
        assert one(docs, "Namespace")["metadata"]["name"] == "modelsearch", overlay
        namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
        assert namespaces == {"modelsearch"}, overlay


def test_the_password_comes_only_from_the_overlays_file(rendered):
    for overlay, (text, docs, password) in rendered.items():
        assert "change-me" not in text, overlay
        secret = one(docs, "Secret", "modelsearch-mysql")   # no hash suffix: the compiled spec names it
        assert base64.b64decode(secret["data"]["password"]).decode() == password, overlay
        elsewhere = yaml.safe_dump_all([d for d in docs if d is not secret])
        encoded = base64.b64encode(password.encode()).decode()
        assert password not in elsewhere and encoded not in elsewhere, overlay
        assert password not in text, f"{overlay}: the password is in plain text"
        mariadb = one(docs, "Deployment", "modelsearch-mysql")
        ref = mariadb["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "modelsearch-mysql", "key": "password"}, overlay
        args = cron_container(one(docs, "CronJob"))["args"][0]
        assert "--mysql-secret modelsearch-mysql --mysql-secret-key password" in args, overlay


def test_the_trial_store_host_is_namespace_qualified(rendered):
    for overlay, (_, docs, _) in rendered.items():
        host = one(docs, "ConfigMap")["data"]["MYSQL_HOST"]
        [service] = [d for d in docs if d["kind"] == "Service"
                     and any(p["port"] == 3306 for p in d["spec"]["ports"])]
        meta = service["metadata"]
        assert host == f"{meta['name']}.{meta['namespace']}.svc.cluster.local", overlay


def test_the_scheduled_job_runs_the_pipeline_image_and_waits_for_the_previous_run(rendered):
    for overlay, (_, docs, _) in rendered.items():
        cron = one(docs, "CronJob")
        container = cron_container(cron)
        assert container["image"] == one(docs, "ConfigMap")["data"]["IMAGE"], overlay
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"
        submit = container["args"][0].split("&&")[1]
        assert "kubeflow_runner submit" in submit and "--skip-if-running" in submit, overlay


def test_gcp_uses_workload_identity(rendered):
    _, docs, _ = rendered["gcp"]
    account = one(docs, "ServiceAccount")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")
    name = account["metadata"]["name"]
    assert one(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == name
    assert one(docs, "Deployment", "modelsearch-serving")["spec"]["template"]["spec"]["serviceAccountName"] == name


def test_tf_serving_is_not_older_than_the_exporting_tensorflow(rendered):
    exporting = tuple(int(p) for p in importlib.metadata.version("tensorflow").split(".")[:2])
    for overlay, (_, docs, _) in rendered.items():
        serving = one(docs, "Deployment", "modelsearch-serving")
        image = serving["spec"]["template"]["spec"]["containers"][0]["image"]
        name, _, tag = image.partition(":")
        assert name == "tensorflow/serving" and re.match(r"^\d+\.\d+\.\d+", tag), image
        assert tuple(int(p) for p in tag.split(".")[:2]) >= exporting, \
            f"{overlay}: {image} is older than tensorflow {exporting} the models are exported with"


def test_scheduled_job_compiles_the_pipeline(tmp_path):
    from pipelines.kubeflow_runner import main
    [cron] = [d for d in load("base/search-schedule.yaml") if d["kind"] == "CronJob"]
    compile_command = cron_container(cron)["args"][0].split("&&")[0]
    env = {**settings(), "PIPELINE_ROOT": "gs://bucket/root", "DATA": "gs://bucket/data.csv"}
    argv = [re.sub(r"\$(\w+)", lambda m: env[m.group(1)], a) for a in shlex.split(compile_command)]
    assert argv[:3] == ["python", "-m", "pipelines.kubeflow_runner"]
    argv = [str(tmp_path / "p.yaml") if a == "/tmp/modelsearch.yaml" else a for a in argv[3:]]
    assert main(argv) == 0 and (tmp_path / "p.yaml").exists()


def test_scheduled_job_submits_what_it_compiled():
    """The submit half of the CronJob's command: options the runner's parser has (argparse exits on any other),
    the package the compile half wrote, the KFP endpoint of the settings, and --skip-if-running. No network."""
    from pipelines.kubeflow_runner import make_parser
    [cron] = [d for d in load("base/search-schedule.yaml") if d["kind"] == "CronJob"]
    compile_argv, argv = ([re.sub(r"\$(\w+)", lambda m: settings()[m.group(1)], a) for a in shlex.split(command)]
                          for command in cron_container(cron)["args"][0].split("&&"))
    assert argv[:3] == ["python", "-m", "pipelines.kubeflow_runner"]
    parser = make_parser()
    args, compiled = parser.parse_args(argv[3:]), parser.parse_args(compile_argv[3:])
    assert args.command == "submit" and args.package == compiled.output == "/tmp/modelsearch.yaml"
    assert args.host == settings()["KFP_HOST"] and args.skip_if_running
    assert not (args.vertex_project or args.vertex_region or args.network)
