"""The cluster manifests: they build, every setting they read exists, and the scheduled job's command
really compiles the pipeline."""
import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.join(os.path.dirname(__file__), "..", "kustomize")


def load(path):
    with open(os.path.join(ROOT, path)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def settings():
    [kustomization] = load("base/kustomization.yaml")
    [generator] = kustomization["configMapGenerator"]
    return dict(line.split("=", 1) for line in generator["literals"])


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


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("overlay", ["gcp", "local"])
def test_overlays_build(overlay):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "overlays", overlay)],
                         capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert {d["metadata"]["namespace"] for d in docs} == {"modelsearch"}


def test_scheduled_job_compiles_the_pipeline(tmp_path):
    from pipelines.kubeflow_runner import main
    [cron] = [d for d in load("base/search-schedule.yaml") if d["kind"] == "CronJob"]
    [container] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    compile_command = container["args"][0].split("&&")[0]
    env = {**settings(), "PIPELINE_ROOT": "gs://bucket/root", "DATA": "gs://bucket/data.csv"}
    argv = [re.sub(r"\$(\w+)", lambda m: env[m.group(1)], a) for a in shlex.split(compile_command)]
    assert argv[:3] == ["python", "-m", "pipelines.kubeflow_runner"]
    argv = [str(tmp_path / "p.json") if a == "/tmp/modelsearch.json" else a for a in argv[3:]]
    assert main(argv) == 0 and (tmp_path / "p.json").exists()
