"""SearchGenerator's work: open the study's search for its trainers. Never trains, and proposes nothing itself:
each trainer asks the strategy for its next candidate when it is free (ARCHITECTURE.md, "Who decides")."""
from __future__ import annotations

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.artifacts import write_plan
from modelsearch.config import SearchConfig
from modelsearch.search import open_search
from modelsearch.trialstore import TrialStore


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        plan = open_search(
            TrialStore(exec_properties["trial_store"]), exec_properties["study"],
            SearchConfig.from_json(exec_properties["search_config"]),
            artifact_utils.get_single_uri(input_dict["transform_graph"]), int(exec_properties["trials"]),
            int(exec_properties["trainers"]))
        write_plan(output_dict["plan"], plan)
