"""Runs the pipeline on this machine: ConcurrentDagRunner (every node a process, the K trainers at once),
SQLite for TFX's metadata and for the trial store."""
from __future__ import annotations

import os
import uuid

from modelsearch.config import SearchConfig

PIPELINE_NAME = "modelsearch"


def paths(output_dir: str) -> dict:
    output_dir = os.path.abspath(output_dir)
    return {"pipeline_root": os.path.join(output_dir, "pipeline"),
            "tfx_metadata": os.path.join(output_dir, "tfx_metadata.sqlite"),
            "trial_store": {"sqlite": os.path.join(output_dir, "trials.sqlite")}}


def fingerprint(data_path: str) -> str:
    """Size and newest mtime of the data (a file, or every file under a folder): the cache key of Preprocess."""
    if os.path.isfile(data_path):
        stat = os.stat(data_path)
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    count = size = newest = 0
    for folder, _, files in os.walk(data_path):
        for name in files:
            stat = os.stat(os.path.join(folder, name))
            count, size, newest = count + 1, size + stat.st_size, max(newest, stat.st_mtime_ns)
    return f"{count}:{size}:{newest}"


def default_trainers() -> int:
    """K when not given: one trainer per core, at most 4 (each trial also uses its share of the cores)."""
    return max(1, min(os.cpu_count() or 1, 4))


def run(output_dir: str, data_path: str, label: str, study: str, search_config: SearchConfig, trials: int,
        trainers: int, seed: int = 0, problem_type: str = "", trial_store: dict | None = None,
        push_destination: str = "", input_kind: str = "", input_shape: str = "",
        beam_pipeline_args: list | None = None) -> dict:
    """Runs the search; returns the trial-store config the trials were written to."""
    from tfx.orchestration import metadata

    from pipelines.concurrent_dag_runner import ConcurrentDagRunner
    from pipelines.pipeline import create_pipeline

    where = paths(output_dir)
    trial_store = trial_store or where["trial_store"]
    ConcurrentDagRunner().run(create_pipeline(
        pipeline_name=PIPELINE_NAME, pipeline_root=where["pipeline_root"], data_path=os.path.abspath(data_path),
        label=label, study=study, trial_store=trial_store, search_config=search_config, trials=trials,
        trainers=trainers, threads_per_trial=max(1, (os.cpu_count() or 1) // trainers), seed=seed,
        problem_type=problem_type,
        run_id=uuid.uuid4().hex, push_destination=push_destination, data_fingerprint=fingerprint(data_path),
        input_kind=input_kind or "", input_shape=input_shape or "", beam_pipeline_args=beam_pipeline_args,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(where["tfx_metadata"])))
    return trial_store


def last_push(output_dir: str) -> str | None:
    """Where the Pusher of the latest run wrote its version (`<base>/<version>`), or None if it pushed nothing."""
    from ml_metadata import metadata_store
    from tfx.orchestration import metadata

    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(paths(output_dir)["tfx_metadata"]))
    pushes = sorted(store.get_artifacts_by_type("PushedModel"), key=lambda a: a.id)
    if not pushes or not pushes[-1].custom_properties["pushed"].int_value:
        return None
    return pushes[-1].custom_properties["pushed_destination"].string_value
