"""Runs the pipeline on this machine: ConcurrentDagRunner (every node a process, the K trainers at once),
SQLite for TFX's metadata and for the trial store (in the output directory, always local), artifacts under a
pipeline root that may be local or on Cloud Storage (gs://), like the data."""
from __future__ import annotations

import os
import uuid

from modelsearch.config import SearchConfig
from modelsearch.data_versions import fingerprint
from pipelines.options import URI

PIPELINE_NAME = "modelsearch"


def absolute(path: str) -> str:
    """A URI (gs://...) as it is, a local path made absolute: the nodes do not run in this directory."""
    return path if URI.match(path) else os.path.abspath(path)


def paths(output_dir: str, pipeline_root: str = "") -> dict:
    output_dir = os.path.abspath(output_dir)
    return {"pipeline_root": absolute(pipeline_root) if pipeline_root else os.path.join(output_dir, "pipeline"),
            "tfx_metadata": os.path.join(output_dir, "tfx_metadata.sqlite"),
            "trial_store": {"sqlite": os.path.join(output_dir, "trials.sqlite")}}


def default_trainers() -> int:
    """K when not given: one trainer per core, at most 4 (each trial also uses its share of the cores)."""
    return max(1, min(os.cpu_count() or 1, 4))


def run(output_dir: str, data_path: str, label: str, study: str, search_config: SearchConfig, trials: int,
        trainers: int, seed: int = 0, problem_type: str = "", trial_store: dict | None = None,
        push_destination: str = "", input_kind: str = "", input_shape: str = "",
        beam_pipeline_args: list | None = None, pipeline_root: str = "", data_fingerprint: str = "",
        on_node_start=None) -> dict:
    """Runs the search; returns the trial-store config the trials were written to. `pipeline_root`: where the
    artifacts go (default OUTPUT_DIR/pipeline; gs:// works). `data_fingerprint`: the data's content digest
    (modelsearch/data_versions.py), if the caller has it; Preprocess reruns when it changes. `on_node_start`:
    called with each node's id as it starts."""
    from tfx.orchestration import metadata

    from pipelines.concurrent_dag_runner import ConcurrentDagRunner
    from pipelines.pipeline import create_pipeline

    where = paths(output_dir, pipeline_root)
    trial_store = trial_store or where["trial_store"]
    ConcurrentDagRunner(on_node_start).run(create_pipeline(
        pipeline_name=PIPELINE_NAME, pipeline_root=where["pipeline_root"], data_path=absolute(data_path),
        label=label, study=study, trial_store=trial_store, search_config=search_config, trials=trials,
        trainers=trainers, threads_per_trial=max(1, (os.cpu_count() or 1) // trainers), seed=seed,
        problem_type=problem_type,
        run_id=uuid.uuid4().hex, push_destination=push_destination, data_fingerprint=data_fingerprint or fingerprint(data_path),
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
