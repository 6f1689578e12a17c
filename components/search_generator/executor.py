"""SearchGenerator's work: read the study's trials, ask the strategy for K candidates. Never trains."""
from __future__ import annotations

import json
import os
import random

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.artifacts import CANDIDATES_FILE, SCHEMA_FILE
from modelsearch import strategies
from modelsearch.config import SearchConfig
from modelsearch.space import SearchSpace
from modelsearch.exploit import teacher_for
from modelsearch.trialstore import SEARCH, TrialStore


def generate(store: TrialStore, study: str, config: SearchConfig, input_shape, num_candidates: int,
             seed: int) -> list[dict]:
    """K candidates for the next round of `study`, deterministic for the seed and the trials so far."""
    trials = [t for t in store.trials(study) if t.kind == SEARCH]  # not replicas, ensembles, students
    space = SearchSpace(config, input_shape)
    strategy = strategies.create(config.strategy, beam_size=config.beam_size, p_deeper=config.p_deeper,
                                 min_completed=config.min_completed)
    rng = random.Random(f"{seed}:{len(trials)}")
    study_round = max((t.round for t in trials), default=-1) + 1
    candidates = strategy.propose(trials, num_candidates, space, rng)
    teacher = teacher_for(trials, config.distillation)  # {} unless distillation is on and a trial completed
    return [{**c.to_json(), **teacher, "round": study_round, "seed": seed * 100003 + len(trials) + i}
            for i, c in enumerate(candidates)]


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        transform_dir = artifact_utils.get_single_uri(input_dict["transform_graph"])
        with open(os.path.join(transform_dir, SCHEMA_FILE)) as f:
            schema = json.load(f)
        candidates = generate(
            TrialStore(exec_properties["trial_store"]), exec_properties["study"],
            SearchConfig.from_json(exec_properties["search_config"]), schema["input_shape"],
            int(exec_properties["num_candidates"]), int(exec_properties.get("seed") or 0))
        out_dir = artifact_utils.get_single_uri(output_dict["candidates"])
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, CANDIDATES_FILE), "w") as f:
            json.dump(candidates, f, indent=1)
