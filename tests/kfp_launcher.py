"""A test harness that runs a compiled KFP V2 pipeline spec the way the KFP v2 launcher does.

Each task of `root.dag` runs as a fresh process started from its executor's container `command` + `args`,
once the tasks it depends on have finished (independent tasks, such as the K trainers, at the same time).
For each task the harness builds the ExecutorInput JSON that KFP's driver would: constant parameters
(`parameterValues`), input artifacts (the producer's URI and the metadata it wrote to its executor output
file), output artifacts at `<pipeline_root>/<run id>/<task>/<output key>`, and an executor output file in a
folder of the task's own (a pod's /tmp/kfp_outputs/output_metadata.json). It resolves
KFP's placeholders in the arguments, and gives the process the environment a pod would get: a copy of
os.environ, the container's `env`, and the platform spec's `secretAsEnv` read from the Secrets the test
passes in (`{secret name: {key: value}}`, the test plays Kubernetes). Nothing else is shared between
tasks: only the pipeline root and whatever the tasks reach themselves (the trial store).

The pipeline root must be a local (or mounted) absolute path. Refused with NotImplementedError rather
than run differently: drivers (the container `lifecycle` hook TFX compiles for ImportExampleGen, i.e.
TFRecord inputs: CSV inputs only), pipeline-level and upstream parameters, conditions, loops, output
parameters, and parameters in TFX's legacy `constantValue` form, which KFP's driver does not implement
either. Ignored: retries (a failed task fails the run), resources, caching.

    run = KfpLauncher("pipeline.yaml", secrets={"modelsearch-mysql": {"password": "..."}}).run()
    run.tasks["Pusher"].pid, run.tasks["Pusher"].log_text()
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_package(path: str) -> tuple[dict, dict, str]:
    """(pipeline spec, Kubernetes platform spec or {}, default pipeline root) from a compiled package: a
    Vertex PipelineJob JSON ({"pipelineSpec": ..., "runtimeConfig": ...}) or a KFP YAML package (the
    pipeline spec, then optionally a `platforms:` document)."""
    with open(path) as f:
        text = f.read()
    try:
        job = json.loads(text)
        spec, platform = job.get("pipelineSpec", job), {}
        root = job.get("runtimeConfig", {}).get("gcsOutputDirectory", "")
    except json.JSONDecodeError:
        documents = [d for d in yaml.safe_load_all(text) if d]
        spec, platform = documents[0], (documents[1] if len(documents) > 1 else {})
        root = ""
    kubernetes = platform.get("platforms", {}).get("kubernetes", {})
    return spec, kubernetes, root or spec.get("defaultPipelineRoot", "")


@dataclasses.dataclass
class TaskRun:
    name: str
    executor_input: dict
    argv: list
    log_path: str
    pid: int = 0
    returncode: int | None = None
    started: float = 0.0
    finished: float = 0.0
    outputs: dict = dataclasses.field(default_factory=dict)  # output key -> runtime artifact as published
    process: subprocess.Popen | None = dataclasses.field(default=None, repr=False)

    def log_text(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


@dataclasses.dataclass
class PipelineRun:
    run_id: str
    run_root: str
    tasks: dict


class TaskFailed(RuntimeError):
    pass


class KfpLauncher:
    def __init__(self, package: str, pipeline_root: str = "", secrets: dict | None = None,
                 env: dict | None = None, work_dir: str = "", timeout: float = 3600.0):
        self.spec, self.platform, default_root = load_package(package)
        self.pipeline_root = pipeline_root or default_root
        if not self.pipeline_root:
            raise ValueError("the package names no pipeline root: pass pipeline_root")
        self.secrets = secrets or {}
        self.base_env = dict(os.environ if env is None else env)
        if not os.path.isabs(self.pipeline_root):
            raise ValueError(f"pipeline root {self.pipeline_root!r}: the harness needs a local absolute path")
        self.run_id = f"{self.spec['pipelineInfo']['name']}-{uuid.uuid4().hex[:8]}"
        self.run_root = os.path.join(self.pipeline_root, self.run_id)
        # Each task's private files (its log, its executor output): what a pod keeps to itself.
        self.work_dir = work_dir or tempfile.mkdtemp(prefix=f"{self.run_id}-")
        self.timeout = timeout

    # -- one task -----------------------------------------------------------------------------------
    def executor_input(self, name: str, task: dict, done: dict) -> dict:
        component = self.spec["components"][task["componentRef"]["name"]]
        if component.get("outputDefinitions", {}).get("parameters"):
            raise NotImplementedError(f"{name}: output parameters are not played")
        parameter_values = {}
        for key, value in task.get("inputs", {}).get("parameters", {}).items():
            runtime = value.get("runtimeValue")
            if runtime is None:  # componentInputParameter, taskOutputParameter
                raise NotImplementedError(f"{name}.{key}: only constant parameters are played: {value}")
            if "constant" not in runtime:  # e.g. constantValue: KFP's driver says "not implemented" too
                raise NotImplementedError(f"{name}.{key}: KFP runs only runtimeValue.constant (pipeline spec "
                                          f"2.1, TFX's use_pipeline_spec_2_1), not {sorted(runtime)}")
            parameter_values[key] = runtime["constant"]
        artifacts = {}
        for key, value in task.get("inputs", {}).get("artifacts", {}).items():
            if "taskOutputArtifact" not in value:
                raise NotImplementedError(f"{name}.{key}: only task output artifacts are played: {value}")
            source = value["taskOutputArtifact"]
            artifacts[key] = {"artifacts": [done[source["producerTask"]].outputs[source["outputArtifactKey"]]]}
        outputs = {
            key: {"artifacts": [{"name": f"{self.run_id}/{name}/{key}", "uri": os.path.join(self.run_root, name, key),
                                 "type": definition["artifactType"], "metadata": {}}]}
            for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items()}
        return {"inputs": {"parameterValues": parameter_values, "artifacts": artifacts},
                "outputs": {"artifacts": outputs,
                            "outputFile": os.path.join(self.work_dir, name, "kfp_outputs", "output_metadata.json")}}

    def resolve(self, argument: str, name: str, executor_input: dict) -> str:
        """KFP's placeholders in one command-line argument (TFX 1.21 writes only {{$}})."""
        inputs, outputs = executor_input["inputs"], executor_input["outputs"]
        fixed = {"": json.dumps(executor_input), ".pipeline_root": self.pipeline_root,
                 ".outputs.output_file": outputs["outputFile"], ".pipeline_job_name": self.run_id,
                 ".pipeline_job_uuid": self.run_id, ".pipeline_task_name": name,
                 ".pipeline_task_uuid": f"{self.run_id}/{name}"}

        def one(match: re.Match) -> str:
            path = match.group(1)
            if path in fixed:
                return fixed[path]
            keyed = re.fullmatch(r"\.(inputs|outputs)\.(parameters|artifacts)\['([^']+)'\](\.uri|\.metadata)?", path)
            if keyed:
                side, kind, key, field = keyed.groups()
                if kind == "artifacts" and field:
                    artifact = (inputs if side == "inputs" else outputs)["artifacts"][key]["artifacts"][0]
                    return artifact["uri"] if field == ".uri" else json.dumps(artifact["metadata"])
                if side == "inputs" and kind == "parameters" and not field:
                    value = inputs["parameterValues"][key]
                    return value if isinstance(value, str) else json.dumps(value)
            raise NotImplementedError(f"{name}: placeholder {match.group(0)} is not played")

        return re.sub(r"\{\{\$(.*?)\}\}", one, argument)

    def environment(self, executor: str, container: dict) -> dict:
        env = dict(self.base_env)
        # The image's `python` is the project's environment (its PATH starts with the venv): here, this one.
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
        for secret in self.platform.get("deploymentSpec", {}).get("executors", {}).get(executor, {}).get(
                "secretAsEnv", []):
            secret_name = secret.get("secretName") or secret["secretNameParameter"]["runtimeValue"]["constant"]
            for pair in secret.get("keyToEnv", []):
                value = self.secrets.get(secret_name, {}).get(pair["secretKey"])
                if value is None and not secret.get("optional"):  # Kubernetes would not start the pod
                    raise TaskFailed(f"{executor}: Secret {secret_name!r} has no key {pair['secretKey']!r}")
                if value is not None:
                    env[pair["envVar"]] = value
        return env

    def start(self, name: str, task: dict, done: dict) -> TaskRun:
        if "triggerPolicy" in task or "iteratorPolicy" in task or "parameterIterator" in task:
            raise NotImplementedError(f"{name}: conditions and loops are not played")
        executor = self.spec["components"][task["componentRef"]["name"]]["executorLabel"]
        container = self.spec["deploymentSpec"]["executors"][executor]["container"]
        if "lifecycle" in container:
            raise NotImplementedError(f"{name}: drivers (ImportExampleGen's, for TFRecords) are not played")
        executor_input = self.executor_input(name, task, done)
        argv = [self.resolve(a, name, executor_input) for a in container.get("command", []) + container.get("args", [])]
        os.makedirs(os.path.join(self.work_dir, name, "kfp_outputs"))
        for output in executor_input["outputs"]["artifacts"].values():  # as KFP's launcher does
            os.makedirs(os.path.dirname(output["artifacts"][0]["uri"]), exist_ok=True)
        run = TaskRun(name, executor_input, argv, os.path.join(self.work_dir, name, "log.txt"), started=time.time())
        with open(run.log_path, "wb") as log:
            # A session of its own: stopping a pod stops everything it started (e.g. trial workers).
            run.process = subprocess.Popen(argv, cwd=REPO_ROOT, env=self.environment(executor, container),
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        run.pid = run.process.pid
        return run

    def published(self, run: TaskRun) -> dict:
        """The task's output artifacts with the URI and metadata its executor wrote to the output file."""
        path = run.executor_input["outputs"]["outputFile"]
        if not os.path.exists(path):  # TFX's entrypoint always writes it, even with no outputs
            raise TaskFailed(f"task {run.name} exited 0 without writing {path}; its output ends:\n"
                             f"{run.log_text()[-4000:]}")
        with open(path) as f:
            written = json.load(f).get("artifacts", {})
        outputs = {}
        for key, planned in run.executor_input["outputs"]["artifacts"].items():
            artifact = dict(planned["artifacts"][0])
            for field in ("uri", "metadata"):
                value = (written.get(key, {}).get("artifacts") or [{}])[0].get(field)
                artifact[field] = value if value is not None else artifact[field]
            outputs[key] = artifact
        return outputs

    # -- the DAG ------------------------------------------------------------------------------------
    def run(self) -> PipelineRun:
        pending, running, done = dict(self.spec["root"]["dag"]["tasks"]), {}, {}
        deadline = time.monotonic() + self.timeout
        try:
            while pending or running:
                for name in [n for n, t in pending.items() if set(t.get("dependentTasks", [])) <= done.keys()]:
                    running[name] = self.start(name, pending.pop(name), done)
                if not running:
                    raise TaskFailed(f"tasks wait on tasks that never run: {sorted(pending)}")
                if time.monotonic() > deadline:
                    raise TaskFailed(f"run past {self.timeout:.0f} s; still running: {sorted(running)}")
                time.sleep(0.2)
                for name, run in list(running.items()):
                    if run.process.poll() is None:
                        continue
                    run.returncode, run.finished = run.process.returncode, time.time()
                    del running[name]
                    if run.returncode:
                        raise TaskFailed(f"task {name} exited with {run.returncode}; its output ends:\n"
                                         f"{run.log_text()[-4000:]}")
                    run.outputs = self.published(run)
                    done[name] = run
        finally:
            for run in running.values():  # a failed run stops the tasks it started
                try:
                    os.killpg(run.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                run.process.wait()
        return PipelineRun(self.run_id, self.run_root, done)
