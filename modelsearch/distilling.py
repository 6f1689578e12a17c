"""The Distiller's work: small students trained to match the ensemble (soft targets plus labels), one kept.

What to try and which to keep are modelsearch.exploit's decisions (student_candidates, keep_student): the
smallest searched trial near the best, the smallest searched architectures, and the best at narrower widths.
Each try is recorded as a "student" trial with the ensemble as its teacher and the searched trial it comes
from as its parent, whose trained weights it starts from wherever a layer's name and shape still match.
Candidates train smallest first (exploit.smallest_first: a narrower network's size is known once built, before
training), and the first within tolerance of the best search trial ends the tries (exploit.near_enough): it is
the smallest that qualifies. The kept one is recorded as the study's "student" decision and is the Distiller's
output.
"""
from __future__ import annotations

import os
import sys

from modelsearch.config import SearchConfig
from modelsearch.export import read_schema
from modelsearch.exploit import (completed_search, keep_student, near_enough, ranked, smallest_first,
                                 student_candidates)
from modelsearch.strategies.base import score
from modelsearch.training import start_and_run
from modelsearch.trialstore import COMPLETED, STUDENT, Trial, TrialStore


def candidate_spec(candidate) -> dict:
    """The spec a candidate trains with: its parent's knobs, at a tenth of the learning rate when it fine-tunes
    its parent's own trained weights (a narrower network inherits few of them and trains as its parent did)."""
    knobs = {**candidate.spec.get("knobs", {})}
    if candidate.fine_tune:
        knobs["learning_rate"] = float(knobs.get("learning_rate", 0.001)) / 10
    return {**candidate.spec, "knobs": knobs}


def distill(store: TrialStore, study: str, config: SearchConfig, teacher: Trial, examples_dir: str,
            transform_dir: str, model_dir: str) -> Trial | None:
    """Tries the candidates smallest first until one is near enough (each into a folder of its own under
    `model_dir`) and returns the kept student."""
    import blocks

    blocks.load_user_blocks(config.custom_blocks)  # a candidate's blocks may be the user's
    settings = config.student
    trials = store.current_trials(study)
    candidates = student_candidates(trials, settings)
    if not candidates:
        print(f"[modelsearch] no student: no completed trial has at most {settings['max_params']:,} parameters; "
              "raise student.max_params", file=sys.stderr, flush=True)
        return None
    distillation = {"mode": "soft_ce", "weight": settings["weight"], "temperature": settings["temperature"]}
    schema = read_schema(transform_dir)
    sizes = [c.parent.num_params if c.fine_tune
             else blocks.build_model(c.spec, schema["input_shape"], schema["task"]).count_params()
             for c in candidates]
    reference = score(ranked(completed_search(trials))[0])
    done = store.completed(study, kinds=(STUDENT,))
    tried = []
    for i, candidate in smallest_first(candidates, sizes, settings["max_params"]):
        spec = candidate_spec(candidate)
        same = [t for t in done if (t.parent_id, t.teacher_id, t.distillation, t.mutation, t.spec)
                == (candidate.parent.trial_id, teacher.trial_id, distillation, candidate.mutation, spec)]
        if same:  # a rerun (after a kill, or with nothing new to search) does not distil the same student again
            print(f"[modelsearch] student trial {same[-1].trial_id} ({candidate.mutation} of trial "
                  f"{candidate.parent.trial_id}) of the same teacher is already in the study",
                  file=sys.stderr, flush=True)
            student = same[-1]
        else:
            student = start_and_run(
                {"spec": spec, "parent_id": candidate.parent.trial_id, "mutation": candidate.mutation,
                 "seed": candidate.parent.seed + 1, "kind": STUDENT, "teacher_id": teacher.trial_id,
                 "distillation": distillation},
                examples_dir, transform_dir, store, study, config, os.path.join(model_dir, f"student_{i}"))
        if student.state != COMPLETED:  # a failed try is recorded (run_trial said why) and skipped
            continue
        tried.append(student)
        if near_enough(student, reference, settings["tolerance"]):
            break  # the smallest within tolerance: every larger one could only be kept if this one were not
    kept, why = keep_student(tried, reference, settings["tolerance"], settings["max_params"])
    if kept is None:
        print(f"[modelsearch] no student: {why}", file=sys.stderr, flush=True)
        return None
    print(f"[modelsearch] student: kept trial {kept.trial_id} ({kept.num_params:,} params, val objective "
          f"{score(kept):.4f}, {kept.mutation} of trial {kept.parent_id}) of {len(tried)} tried: {why}",
          file=sys.stderr, flush=True)
    store.record_decision(study, STUDENT, {"kept_trial_id": kept.trial_id, "teacher_id": teacher.trial_id,
                                           "tried": [t.trial_id for t in tried], "reason": why})
    return kept
