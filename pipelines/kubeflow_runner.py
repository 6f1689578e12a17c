"""Compiles the pipeline for Kubeflow Pipelines V2 / Vertex AI Pipelines, and submits it to either.

The same create_pipeline as the local runner; only the configuration differs: every component runs in
the pipeline image (container/Dockerfile), artifacts live under a shared root (gs://...), and the
trial store is MySQL, because each step is its own pod and a SQLite file would not be shared.

The package is a KFP YAML file: the pipeline spec, then the Kubernetes platform spec as a second document
(as kfp-kubernetes writes it), which hands the MySQL password to the pods from a Kubernetes Secret. The
password itself is never in the package: the trial-store config names only the variable to read it from.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import sys
import tempfile

from modelsearch.errors import UserError
from pipelines import options

PIPELINE_NAME = "modelsearch"
# The pods run our entrypoint, not TFX's, with TFX's arguments (pipelines/pod_entrypoint.py says why).
POD_COMMAND = ("python", "-m", "pipelines.pod_entrypoint")
PASSWORD_ENV = "MODELSEARCH_MYSQL_PASSWORD"
RETRY_BACKOFF = {"backoffDuration": "60s", "backoffFactor": 2.0, "backoffMaxDuration": "3600s"}
KFP_GOING = ("PENDING", "RUNNING")  # a KFP run in these states is still going
VERTEX_GOING = ("PIPELINE_STATE_QUEUED", "PIPELINE_STATE_PENDING", "PIPELINE_STATE_RUNNING")
NETWORK_TIMEOUT_S = 60  # an endpoint that never answers fails the submit instead of hanging it


def mysql_store(host: str, database: str, port: int = 3306, user: str = "root",
                password_env: str = PASSWORD_ENV) -> dict:
    """The trial-store config for a cluster; the password is read from `password_env` in each pod."""
    return {"mysql": {"host": host, "port": int(port), "database": database, "user": user,
                      "password_env": password_env}}


def _gigabytes(memory: str) -> float:
    """A Kubernetes memory quantity in GB (10^9 bytes), the unit of the spec's older memoryLimit field."""
    units = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
             "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
    text = str(memory)
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * units[suffix] / 1e9
    return float(text) / 1e9


def trainer_resources(pods: dict):
    """The trainer pods' ResourceSpec from the config's trainer_pods section, or None when it asks for nothing.

    Both forms kfp's own compiler writes: the string fields (resourceCpuLimit, ...) that current KFP backends
    read, and the numeric ones (cpuLimit, memoryLimit in GB) that older backends and Vertex AI read."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if pods.get("cpu") is not None:
        spec.resource_cpu_limit = str(pods["cpu"])
        spec.cpu_limit = _cpus(pods["cpu"])
    if pods.get("memory") is not None:
        spec.resource_memory_limit = str(pods["memory"])
        spec.memory_limit = _gigabytes(pods["memory"])
    if pods.get("gpus"):
        spec.accelerator.type = spec.accelerator.resource_type = pods["gpu_type"]
        spec.accelerator.count = int(pods["gpus"])
        spec.accelerator.resource_count = str(int(pods["gpus"]))
    return spec if spec.ListFields() else None


def _cpus(cpu) -> float:
    """A Kubernetes CPU quantity ("4", "500m") in CPUs."""
    cpu = str(cpu)
    return float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)


def _threads(pods: dict) -> int:
    """TensorFlow threads per trial: the pod's CPUs when it asks for some (0: every core the pod sees)."""
    return 0 if pods.get("cpu") is None else max(1, int(_cpus(pods["cpu"])))


def compile_pipeline(output_file: str, image: str, pipeline_root: str, data_path: str, label: str,
                     trial_store: dict, search_config, study: str = "default",
                     seed: int = 0, problem_type: str = "", push_destination: str = "", input_kind: str = "",
                     input_shape: str = "", beam_pipeline_args: list | None = None,
                     mysql_secret: str = "modelsearch-mysql", mysql_secret_key: str = "password",
                     password_secret_version: str = "") -> str:
    """Writes the KFP package (a .yaml) to `output_file` and returns its path.

    `mysql_secret` / `mysql_secret_key`: the Kubernetes Secret (and its key) that every pod which opens the
    trial store gets as its password variable. `password_secret_version`: for Vertex AI, which has no
    Kubernetes Secrets, a Secret Manager secret version the pods read the password from instead."""
    import yaml
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kubeflow_v2

    from pipelines.pipeline import create_pipeline

    if "mysql" not in trial_store:
        raise UserError("on Kubeflow every step is its own pod: the trial store must be MySQL "
                        "(--mysql-host/--mysql-database; kustomize/base has one)")
    if not output_file.endswith((".yaml", ".yml")):
        raise UserError(f"--output {output_file}: write a .yaml package (Kubeflow Pipelines and Vertex AI both "
                        "load it), e.g. --output modelsearch.yaml")
    for name, path in (("--pipeline-root", pipeline_root), ("--data", data_path),
                       ("--push-destination", push_destination)):
        if path:
            options.cluster_path(name, path)
    pods = search_config.trainer_pods
    # Caching off: a search round's inputs look the same every run, but the trial store behind them grows.
    pipeline = create_pipeline(
        pipeline_name=PIPELINE_NAME, pipeline_root=pipeline_root, data_path=data_path, label=label, study=study,
        trial_store=trial_store, search_config=search_config, trials=search_config.trials,
        trainers=search_config.trainers or 2, threads_per_trial=_threads(pods),
        seed=seed, problem_type=problem_type, enable_cache=False, push_destination=push_destination,
        input_kind=input_kind, input_shape=input_shape, beam_pipeline_args=list(beam_pipeline_args or []))
    resources = trainer_resources(pods)
    trainers = [node.id for node in pipeline.components if node.id.startswith("trainer_")]
    for node in pipeline.components:
        if resources is not None and node.id in trainers:
            node.with_platform_config(resources)
    # Pipeline spec 2.1 (parameterType, runtimeValue.constant): KFP's driver refuses TFX's default 2.0 form
    # (runtimeValue.constantValue is "not implemented"); Vertex AI runs either.
    runner = kubeflow_v2.KubeflowV2DagRunner(config=kubeflow_v2.KubeflowV2DagRunnerConfig(
        default_image=image, default_commands=list(POD_COMMAND), use_pipeline_spec_2_1=True))
    spec = runner.run(pipeline, write_out=False)["pipelineSpec"]
    spec["defaultPipelineRoot"] = pipeline_root
    tasks = spec["root"]["dag"]["tasks"]
    if pods["retries"]:  # a retried trainer carries on from the trial store
        for name in trainers:
            tasks[name]["retryPolicy"] = {"maxRetryCount": int(pods["retries"]), **RETRY_BACKOFF}
    # Every task that opens the trial store gets the password variable; nothing else does.
    password_env = trial_store["mysql"]["password_env"]
    store_executors = sorted({spec["components"][task["componentRef"]["name"]]["executorLabel"]
                              for task in tasks.values() if "trial_store" in task.get("inputs", {}).get("parameters", {})})
    # secretName, and secretNameParameter that current kfp-kubernetes writes beside it.
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {
        label: {"secretAsEnv": [{"keyToEnv": [{"envVar": password_env, "secretKey": mysql_secret_key}],
                                 "secretName": mysql_secret,
                                 "secretNameParameter": {"runtimeValue": {"constant": mysql_secret}}}]}
        for label in store_executors}}}}}
    if password_secret_version:  # a name, not the password: the pods read the secret itself
        from pipelines.pod_entrypoint import SECRET_MANAGER_SUFFIX
        for label in store_executors:
            spec["deploymentSpec"]["executors"][label]["container"].setdefault("env", []).append(
                {"name": password_env + SECRET_MANAGER_SUFFIX, "value": password_secret_version})
    output_file = os.path.abspath(output_file)
    os.makedirs(os.path.dirname(output_file), exist_ok=True)
    with open(output_file, "w") as f:
        f.write(f"# PIPELINE DEFINITION\n# Name: {PIPELINE_NAME}\n")
        yaml.safe_dump_all([spec, platform], f, sort_keys=True)
    return output_file


# -- submit ----------------------------------------------------------------------------------------------

def load_package(package: str) -> dict:
    """The pipeline spec of a compiled package, after kfp's own loader has accepted the package."""
    from kfp.client import client as kfp_client

    if not os.path.isfile(package):
        raise UserError(f"pipeline package {package} does not exist; compile it first")
    if not package.endswith((".yaml", ".yml")):
        raise UserError(f"pipeline package {package} is not a .yaml package; compile it again with "
                        "--output modelsearch.yaml")
    try:
        doc = kfp_client._extract_pipeline_yaml(package)
    except Exception as e:  # yaml / protobuf parse errors: not a package
        raise UserError(f"{package} is not a compiled pipeline package ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); compile it again") from None
    from google.protobuf import json_format
    return json_format.MessageToDict(doc.pipeline_spec)


def _run_name(pipeline: str) -> str:
    return f"{pipeline} {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H-%M-%S}"


def _kfp_going(client, experiment: str, pipeline: str):
    """A run of `pipeline` in `experiment` that is still going, or None."""
    try:
        found = client.get_experiment(experiment_name=experiment)
    except ValueError as e:
        if str(e).startswith("No experiment is found"):  # none yet: nothing of it runs
            return None
        raise UserError(f"experiment {experiment}: {e}") from None
    token = ""
    while True:
        page = client.list_runs(experiment_id=found.experiment_id, page_token=token, page_size=100,
                                sort_by="created_at desc")
        for run in page.runs or []:
            spec = run.pipeline_spec or {}
            spec = spec.get("pipeline_spec", spec)  # a package with a platform spec nests the pipeline spec
            name = spec.get("pipelineInfo", {}).get("name")
            if run.state in KFP_GOING and (name == pipeline or (run.display_name or "").startswith(pipeline + " ")):
                return run
        token = page.next_page_token
        if not token:
            return None


def submit_kfp(package: str, host: str, experiment: str = "modelsearch", skip_if_running: bool = False,
               service_account: str = "") -> str:
    """Starts one run of a compiled package on a KFP endpoint; returns what it did, in one line."""
    import kfp

    pipeline = load_package(package)["pipelineInfo"]["name"]
    client = kfp.Client(host=host)
    if skip_if_running:
        going = _kfp_going(client, experiment, pipeline)
        if going is not None:
            return (f"not started: run {going.run_id} ({going.display_name}) of pipeline {pipeline} in experiment "
                    f"{experiment} is still {going.state}")
    run = client.create_run_from_pipeline_package(package, arguments={}, run_name=_run_name(pipeline),
                                                  experiment_name=experiment, service_account=service_account or None)
    return f"started run {run.run_id}"


def submit_vertex(package: str, project: str, region: str, service_account: str = "", network: str = "",
                  skip_if_running: bool = False, api_endpoint: str = "", credentials=None) -> str:
    """Starts one PipelineJob of a compiled package on Vertex AI Pipelines; returns what it did, in one line.

    `network`: the VPC network peered with the job (projects/NUMBER/global/networks/NAME), the one a Cloud SQL
    trial store's private IP is on. `api_endpoint`: another Vertex AI endpoint (Private Service Connect)."""
    from google.cloud import aiplatform

    spec = load_package(package)
    pipeline, root = spec["pipelineInfo"]["name"], spec.get("defaultPipelineRoot", "")
    if not root.startswith("gs://"):
        raise UserError(f"{package} has pipeline root {root!r}; Vertex AI needs a gs:// one: compile with "
                        "--pipeline-root gs://BUCKET/root")
    # REST, not gRPC: one transport for Vertex's own endpoints and an api_endpoint of the user's.
    try:
        aiplatform.init(project=project, location=region, credentials=credentials,
                        api_endpoint=api_endpoint or None, api_transport="rest")
    except ValueError as e:
        if "region" in str(e):
            raise UserError(f"--vertex-region {region} is not a Vertex AI region; e.g. us-central1") from None
        raise UserError(f"Vertex AI settings: {_one_line(e)}") from None
    if skip_if_running:
        states = " OR ".join(f'state="{s}"' for s in VERTEX_GOING)
        for job in aiplatform.PipelineJob.list(filter=f'pipeline_name="{pipeline}" AND ({states})'):
            state = job.gca_resource.state.name  # as listed (job.state would fetch each job again)
            if state in VERTEX_GOING:
                return f"not started: pipeline job {job.resource_name} of pipeline {pipeline} is still {state}"
    with tempfile.TemporaryDirectory(prefix="modelsearch-vertex-") as folder:
        # Vertex reads one YAML document; the Kubernetes platform spec is no use there.
        template = os.path.join(folder, "pipeline.json")
        with open(template, "w") as f:
            json.dump(spec, f)
        job = aiplatform.PipelineJob(display_name=pipeline, template_path=template, pipeline_root=root)
    request = job._gca_resource  # the PipelineJob message it built; job.submit() sends the same one
    if service_account:
        request.service_account = service_account
    if network:
        request.network = network
    # Straight to the API rather than job.submit(), which first looks the root's bucket up (to create it, or to
    # check its owner through Resource Manager): a permission the submitter may lack, for a bucket that must
    # exist anyway (the pods write to it).
    created = job.api_client.create_pipeline_job(parent=f"projects/{project}/locations/{region}",
                                                 pipeline_job=request, pipeline_job_id=job.job_id)
    return f"started pipeline job {created.name}"


def _endpoint_errors() -> tuple:
    """What an endpoint's failure raises: connection refused, timeouts, HTTP errors, missing credentials."""
    import google.api_core.exceptions
    import google.auth.exceptions
    import kfp_server_api
    import urllib3

    return (OSError, urllib3.exceptions.HTTPError, kfp_server_api.ApiException,
            google.api_core.exceptions.GoogleAPIError, google.auth.exceptions.GoogleAuthError)


def _one_line(e: BaseException) -> str:
    """An endpoint's error as one short line: the HTTP status and body, or why the connection failed."""
    import kfp_server_api
    import urllib3

    if isinstance(e, kfp_server_api.ApiException):
        return f"HTTP {e.status} {e.reason or ''}: {' '.join(str(e.body or '').split())}"[:300]
    while not isinstance(e, urllib3.exceptions.MaxRetryError) and e.args and isinstance(e.args[0], BaseException):
        e = e.args[0]  # requests wraps urllib3's error
    if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason is not None:
        e = e.reason
    text = [line for line in str(e).strip().splitlines() if line.strip()]
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def submit(args) -> str:
    """The submit command: exactly one target, its endpoint's errors as one line (a UserError)."""
    vertex = args.vertex_project or args.vertex_region
    if bool(args.host) == bool(vertex):
        raise UserError("submit to one target: --host URL (Kubeflow Pipelines) or --vertex-project PROJECT "
                        "--vertex-region REGION (Vertex AI)")
    if args.host and args.network:
        raise UserError("--network is Vertex AI's (the VPC the job is peered with); leave it out with --host")
    if vertex and not (args.vertex_project and args.vertex_region):
        raise UserError("Vertex AI needs both --vertex-project and --vertex-region")
    load_package(args.package)  # a bad package fails before any request
    errors = _endpoint_errors()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(NETWORK_TIMEOUT_S)
    try:
        if args.host:
            return submit_kfp(args.package, args.host, args.experiment, args.skip_if_running, args.service_account)
        return submit_vertex(args.package, args.vertex_project, args.vertex_region, args.service_account,
                             args.network, args.skip_if_running, args.vertex_endpoint)
    except errors as e:
        target = args.host or f"Vertex AI ({args.vertex_project}, {args.vertex_region})"
        raise UserError(f"submitting to {target} failed: {_one_line(e)}") from None
    finally:
        socket.setdefaulttimeout(previous)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.kubeflow_runner",
                                     description="Compile the Model Search pipeline for Kubeflow / Vertex AI, or submit it.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("compile", help="write the pipeline package (KFP YAML)")
    build.add_argument("--output", required=True, help="the package to write, e.g. modelsearch.yaml")
    build.add_argument("--image", required=True, help="the pipeline image built from container/Dockerfile")
    build.add_argument("--pipeline-root", required=True, help="artifact root every pod reaches, e.g. gs://bucket/root")
    # The pipeline-shaping options are the local run's (pipelines/options.py): one definition for both.
    options.add_input_options(build, cluster=True)
    options.add_search_options(build, cluster=True)
    options.add_trainer_pod_options(build)
    build.add_argument("--mysql-host", required=True,
                       help="the trial store's MySQL host, e.g. modelsearch-mysql.modelsearch.svc.cluster.local")
    build.add_argument("--mysql-database", default="modelsearch")
    build.add_argument("--mysql-port", type=int, default=3306)
    build.add_argument("--mysql-user", default="root")
    build.add_argument("--mysql-secret", default="modelsearch-mysql",
                       help="the Kubernetes Secret that holds the MySQL password (default modelsearch-mysql)")
    build.add_argument("--mysql-secret-key", default="password", help="its key (default password)")
    build.add_argument("--mysql-password-secret", default="", metavar="VERSION",
                       help="Vertex AI (no Kubernetes Secrets): the Secret Manager secret version that holds the "
                            "password, projects/P/secrets/S/versions/latest, read by each pod's service account")
    run = commands.add_parser("submit", help="start a run of a compiled package")
    run.add_argument("--package", required=True, help="the compiled package (.yaml)")
    run.add_argument("--host", help="Kubeflow Pipelines: the API endpoint, e.g. http://ml-pipeline.kubeflow:8888")
    run.add_argument("--experiment", default="modelsearch", help="Kubeflow Pipelines: the experiment (default modelsearch)")
    run.add_argument("--vertex-project", help="Vertex AI: the Google Cloud project")
    run.add_argument("--vertex-region", help="Vertex AI: the region, e.g. us-central1")
    run.add_argument("--service-account", default="",
                     help="the run's service account: a Google service account e-mail (Vertex AI), or a Kubernetes "
                          "service account (Kubeflow Pipelines)")
    run.add_argument("--network", default="",
                     help="Vertex AI: the VPC network the job is peered with, projects/NUMBER/global/networks/NAME "
                          "(the one a Cloud SQL trial store's private IP is on)")
    run.add_argument("--vertex-endpoint", default="", help="Vertex AI: another API endpoint (e.g. Private Service Connect)")
    run.add_argument("--skip-if-running", action="store_true",
                     help="start nothing (and exit 0) while a run of this pipeline is still pending or running")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(options.join_beam_args(sys.argv[1:] if argv is None else argv))
    os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    try:
        if args.command == "submit":
            print(submit(args), flush=True)
            return 0
        options.check_input_options(args)
        config = options.search_config(args)
        path = compile_pipeline(
            args.output, args.image, args.pipeline_root, args.data, args.label or "",
            mysql_store(args.mysql_host, args.mysql_database, args.mysql_port, args.mysql_user),
            config, study=args.study, seed=args.seed, problem_type=args.problem_type or "",
            push_destination=args.push_destination or "", input_kind=args.input_kind or "",
            input_shape=args.input_shape or "", beam_pipeline_args=args.beam_args, mysql_secret=args.mysql_secret,
            mysql_secret_key=args.mysql_secret_key, password_secret_version=args.mysql_password_secret)
        print(json.dumps({"pipeline_spec": path}))
    except UserError as e:
        print(f"modelsearch: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
