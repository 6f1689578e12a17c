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
    chosen = choose_student(store.current_trials(study), settings["tolerance"], settings["max_params"])
    if chosen is None:
        print(f"[modelsearch] no student: no completed trial has at most {settings['max_params']:,} parameters; "
              "raise student.max_params", file=sys.stderr, flush=True)
        return None
    distillation = {"mode": "soft_ce", "weight": settings["weight"], "temperature": settings["temperature"]}
    done = [t for t in store.completed(study, kinds=(STUDENT,))
            if (t.parent_id, t.teacher_id, t.distillation) == (chosen.trial_id, teacher.trial_id, distillation)]
    if done:  # a rerun (after a kill, or with nothing new to search) does not distil the same student again
        print(f"[modelsearch] student trial {done[-1].trial_id} of the same teacher is already in the study",
              file=sys.stderr, flush=True)
        return done[-1]
    # Fine-tuning from the chosen trial's trained weights: a tenth of its learning rate.
    knobs = {**chosen.spec.get("knobs", {})}
    knobs["learning_rate"] = float(knobs.get("learning_rate", 0.001)) / 10
    return start_and_run(
        {"spec": {**chosen.spec, "knobs": knobs}, "parent_id": chosen.trial_id, "mutation": "distill",
         "seed": chosen.seed + 1, "kind": STUDENT, "teacher_id": teacher.trial_id,
         "distillation": distillation},
        examples_dir, transform_dir, store, study, config, model_dir)
