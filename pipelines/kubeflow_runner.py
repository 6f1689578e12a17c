"""Compiles the pipeline for Kubeflow Pipelines V2 / Vertex AI Pipelines, and submits it to a KFP endpoint.

The same create_pipeline as the local runner; only the configuration differs: every component runs in
the pipeline image (container/Dockerfile), artifacts live under a shared root (gs://...), and the
trial store is MySQL, because each step is its own pod and a SQLite file would not be shared.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from modelsearch.errors import UserError

PIPELINE_NAME = "modelsearch"


def mysql_store(host: str, database: str, port: int = 3306, user: str = "root",
                password_env: str = "MODELSEARCH_MYSQL_PASSWORD") -> dict:
    """The trial-store config for a cluster; the password is read from `password_env` in each pod."""
    return {"mysql": {"host": host, "port": int(port), "database": database, "user": user,
                      "password_env": password_env}}


def compile_pipeline(output_file: str, image: str, pipeline_root: str, data_path: str, label: str,
                     trial_store: dict, search_config, study: str = "default",
                     seed: int = 0, problem_type: str = "", push_destination: str = "") -> str:
    """Writes the KFP V2 pipeline spec (JSON) to `output_file` and returns its path."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kubeflow_v2

    from pipelines.pipeline import create_pipeline

    if "mysql" not in trial_store:
        raise UserError("on Kubeflow every step is its own pod: the trial store must be MySQL "
                        "(--mysql-host/--mysql-database; kustomize/base has one)")
    for name, path in (("--pipeline-root", pipeline_root), ("--data", data_path)):
        if not (path.startswith("gs://") or os.path.isabs(path)):
            raise UserError(f"{name} {path!r} must be a gs:// URI or an absolute path that every pod mounts")
    # Caching off: a search round's inputs look the same every run, but the trial store behind them grows.
    pipeline = create_pipeline(
        pipeline_name=PIPELINE_NAME, pipeline_root=pipeline_root, data_path=data_path, label=label, study=study,
        trial_store=trial_store, search_config=search_config, trials=search_config.trials,
        trainers=search_config.trainers or 2,
        seed=seed, problem_type=problem_type, enable_cache=False, push_destination=push_destination)
    output_file = os.path.abspath(output_file)
    runner = kubeflow_v2.KubeflowV2DagRunner(
        config=kubeflow_v2.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(output_file), output_filename=os.path.basename(output_file))
    runner.run(pipeline, write_out=True)
    return output_file


def submit(package: str, host: str, experiment: str = "modelsearch") -> str:
    """Starts one run of a compiled pipeline on a KFP endpoint (what the scheduled CronJob does)."""
    import kfp

    client = kfp.Client(host=host)
    run = client.create_run_from_pipeline_package(package, arguments={}, experiment_name=experiment)
    return run.run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.kubeflow_runner",
                                     description="Compile the Model Search pipeline for Kubeflow / Vertex AI, or submit it.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("compile", help="write the KFP V2 pipeline spec (JSON)")
    build.add_argument("--output", required=True, help="the pipeline spec file to write, e.g. modelsearch.json")
    build.add_argument("--image", required=True, help="the pipeline image built from container/Dockerfile")
    build.add_argument("--pipeline-root", required=True, help="artifact root every pod reaches, e.g. gs://bucket/root")
    build.add_argument("--data", required=True, help="the CSV, e.g. gs://bucket/data.csv")
    build.add_argument("--label", required=True)
    build.add_argument("--problem-type", choices=["classification", "regression"], default="")
    build.add_argument("--mysql-host", required=True, help="the trial store's MySQL service, e.g. modelsearch-mysql")
    build.add_argument("--mysql-database", default="modelsearch")
    build.add_argument("--mysql-port", type=int, default=3306)
    build.add_argument("--mysql-user", default="root")
    build.add_argument("--trials", type=int, help="the study's budget of search trials (default 6; config \"trials\")")
    build.add_argument("--trainers", type=int, help="trainer pods at once (default 2; config \"trainers\")")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--study", default="default")
    build.add_argument("--config", help="search configuration JSON file")
    build.add_argument("--push-destination", default="", help="TF Serving model base directory, e.g. gs://bucket/serving")
    run = commands.add_parser("submit", help="start a run of a compiled pipeline")
    run.add_argument("--package", required=True, help="the compiled pipeline spec")
    run.add_argument("--host", required=True, help="the KFP API endpoint, e.g. http://ml-pipeline.kubeflow:8888")
    run.add_argument("--experiment", default="modelsearch")
    args = parser.parse_args(argv)
    os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    try:
        if args.command == "submit":
            if not os.path.isfile(args.package):
                raise UserError(f"pipeline package {args.package} does not exist; compile it first")
            print(f"started run {submit(args.package, args.host, args.experiment)}")
            return 0
        from modelsearch.config import load_config
        config = load_config(args.config, {"trials": args.trials, "trainers": args.trainers})
        path = compile_pipeline(
            args.output, args.image, args.pipeline_root, args.data, args.label,
            mysql_store(args.mysql_host, args.mysql_database, args.mysql_port, args.mysql_user),
            config, study=args.study, seed=args.seed,
            problem_type=args.problem_type, push_destination=args.push_destination)
        print(json.dumps({"pipeline_spec": path}))
    except UserError as e:
        print(f"modelsearch: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
