"""The Distiller's work: train a small student to match the ensemble (soft targets plus labels).

The student's architecture is decided by modelsearch.exploit.choose_student (the smallest trial within
a tolerance of the best, or the best within a parameter budget); it starts from that trial's trained
weights and is recorded as a "student" trial with the ensemble as its teacher.
"""
from __future__ import annotations

import sys

from modelsearch.config import SearchConfig
from modelsearch.exploit import choose_student
from modelsearch.training import start_and_run
from modelsearch.trialstore import STUDENT, Trial, TrialStore


def distill(store: TrialStore, study: str, config: SearchConfig, teacher: Trial, examples_dir: str,
            transform_dir: str, model_dir: str) -> Trial | None:
    settings = config.student
    chosen = choose_student(store.trials(study), settings["tolerance"], settings["max_params"])
    if chosen is None:
        print(f"[modelsearch] no student: no completed trial has at most {settings['max_params']:,} parameters; "
              "raise student.max_params", file=sys.stderr, flush=True)
        return None
    # Fine-tuning from the chosen trial's trained weights: a tenth of its learning rate.
    knobs = {**chosen.spec.get("knobs", {})}
    knobs["learning_rate"] = float(knobs.get("learning_rate", 0.001)) / 10
    return start_and_run(
        {"spec": {**chosen.spec, "knobs": knobs}, "parent_id": chosen.trial_id, "mutation": "distill",
         "seed": chosen.seed + 1, "kind": STUDENT, "teacher_id": teacher.trial_id,
         "distillation": {"mode": "soft_ce", "weight": settings["weight"], "temperature": settings["temperature"]}},
        examples_dir, transform_dir, store, study, config, model_dir)
