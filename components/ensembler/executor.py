"""Ensembler's work: modelsearch/ensembling.py's build_ensemble on the study, into this component's Model."""
from __future__ import annotations

import sys

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.artifacts import set_trial_property
from modelsearch.config import SearchConfig
from modelsearch.ensembling import build_ensemble
from modelsearch.trialstore import TrialStore


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        trial = build_ensemble(
            TrialStore(exec_properties["trial_store"]), exec_properties["study"],
            SearchConfig.from_json(exec_properties["search_config"]),
            artifact_utils.get_single_uri(input_dict["transformed_examples"]),
            artifact_utils.get_single_uri(input_dict["transform_graph"]),
            artifact_utils.get_single_uri(output_dict["model"]))
        if trial is None:
            print("[modelsearch] ensemble skipped: fewer than 2 completed trials and no replicas",
                  file=sys.stderr, flush=True)
        set_trial_property(output_dict, trial)
