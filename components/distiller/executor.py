"""Distiller's work: modelsearch/distilling.py's distill from the Ensembler's trial, into this component's Model."""
from __future__ import annotations

import sys

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.artifacts import set_trial_property, trial_of
from modelsearch.config import SearchConfig
from modelsearch.distilling import distill
from modelsearch.trialstore import TrialStore


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        store = TrialStore(exec_properties["trial_store"])
        teacher = trial_of(store, input_dict, "ensemble")
        student = None
        if teacher is None:
            print("[modelsearch] student skipped: no ensemble to learn from", file=sys.stderr, flush=True)
        else:
            student = distill(store, exec_properties["study"], SearchConfig.from_json(exec_properties["search_config"]),
                              teacher, artifact_utils.get_single_uri(input_dict["transformed_examples"]),
                              artifact_utils.get_single_uri(input_dict["transform_graph"]),
                              artifact_utils.get_single_uri(output_dict["model"]))
        set_trial_property(output_dict, student)
