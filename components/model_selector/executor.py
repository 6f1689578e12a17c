"""ModelSelector's work: modelsearch/selection.py's push decision (on validation), recorded, and the blessing for
TFX's Pusher."""
from __future__ import annotations

import os
import sys

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.artifacts import trial_of
from modelsearch.config import SearchConfig
from modelsearch.exploit import completed_search, ranked
from modelsearch.export import SERVING_DIR
from modelsearch.selection import decide
from modelsearch.trialstore import TrialStore


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        store, study = TrialStore(exec_properties["trial_store"]), exec_properties["study"]
        best = ranked(completed_search(store.current_trials(study)))[:1]
        candidates = [*best, trial_of(store, input_dict, "ensemble"), trial_of(store, input_dict, "student")]
        decision = decide(store, study, SearchConfig.from_json(exec_properties["search_config"]), candidates,
                          artifact_utils.get_single_uri(input_dict["transformed_examples"]),
                          artifact_utils.get_single_uri(input_dict["transform_graph"]),
                          exec_properties["push_destination"])
        store.record_decision(study, "push", decision)
        model = artifact_utils.get_single_instance(output_dict["model"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        if decision.get("winner_trial_id") is not None:
            io_utils.copy_dir(decision["saved_model"], os.path.join(model.uri, SERVING_DIR))
            model.set_int_custom_property("trial_id", decision["winner_trial_id"])
        # TFX's Pusher pushes only a model whose blessing says blessed == 1.
        blessing.set_int_custom_property("blessed", int(decision["pushed"]))
        blessing.set_string_custom_property("reason", decision["reason"])
        io_utils.write_string_file(os.path.join(blessing.uri, "BLESSED" if decision["pushed"] else "NOT_BLESSED"), "")
        verb = "pushing" if decision["pushed"] else "not pushing"
        print(f"[modelsearch] {verb} trial {decision.get('winner_trial_id')} ({decision.get('winner_kind', '-')}): "
              f"{decision['reason']}", file=sys.stderr, flush=True)
