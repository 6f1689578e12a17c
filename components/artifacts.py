"""Artifact types of our own (the rest are TFX's standard Examples, TransformGraph and Model)."""
from __future__ import annotations

from tfx.types import artifact_utils, standard_artifacts
from tfx.types.artifact import Artifact
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from modelsearch.trialstore import Trial, TrialStore


class SearchPlan(Artifact):
    """plan.json: what SearchGenerator found when it opened the search (budget, trials held, trainers)."""

    # On Kubeflow V2 the pod's entrypoint imports a custom artifact class from its type name, read as
    # <module>.<class>: components.SearchPlan (components/__init__.py) is where it finds this one.
    TYPE_NAME = "components.SearchPlan"


PLAN_FILE = "plan.json"


def write_plan(channel: list, plan: dict) -> None:
    import json
    import os

    from tfx.utils import io_utils
    [artifact] = channel
    io_utils.write_string_file(os.path.join(artifact.uri, PLAN_FILE), json.dumps(plan, indent=1))
    artifact.set_int_custom_property("to_train", plan["to_train"])


def study_parameters() -> dict:
    """The parameters of every component that works on a study: its name, the trial store's JSON
    connection config (see modelsearch/trialstore.py) and the JSON SearchConfig."""
    return {"study": ExecutionParameter(type=str), "trial_store": ExecutionParameter(type=str),
            "search_config": ExecutionParameter(type=str)}


def data_inputs() -> dict:
    """Preprocess's outputs, which every trainer-like component reads."""
    return {"transformed_examples": ChannelParameter(type=standard_artifacts.Examples),
            "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph)}


def set_trial_property(output_dict: dict, trial: Trial | None) -> None:
    """Tells downstream components which trial the Model artifact holds (-1: none was made)."""
    [model] = output_dict["model"]
    model.set_int_custom_property("trial_id", trial.trial_id if trial else -1)
    model.set_string_custom_property("trial_state", trial.state if trial else "skipped")


def trial_of(store: TrialStore, input_dict: dict, key: str) -> Trial | None:
    """The trial behind an input Model artifact written by set_trial_property (None if skipped)."""
    trial_id = artifact_utils.get_single_instance(input_dict[key]).get_int_custom_property("trial_id")
    return store.get(trial_id) if trial_id > 0 else None
