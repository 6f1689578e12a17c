"""Trainer's work: modelsearch/trainer_loop.py's loop over the study's next candidates. Never decides."""
from __future__ import annotations

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from modelsearch.config import SearchConfig
from modelsearch.trainer_loop import run_trainer


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        [model] = output_dict["model"]
        trials = run_trainer(
            exec_properties["trial_store"], exec_properties["study"],
            SearchConfig.from_json(exec_properties["search_config"]), int(exec_properties["trials"]),
            artifact_utils.get_single_uri(input_dict["transformed_examples"]),
            artifact_utils.get_single_uri(input_dict["transform_graph"]), model.uri,
            seed=int(exec_properties.get("seed") or 0), threads=int(exec_properties.get("threads") or 0))
        model.set_string_custom_property("trial_ids", ",".join(str(t.trial_id) for t in trials))
