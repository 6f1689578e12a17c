"""summary.json: what a run leaves in its output directory, read from the trial store."""
from __future__ import annotations

import json
import os

from modelsearch.export import SERVING_DIR
from modelsearch.objective import pareto_front
from modelsearch.strategies.base import score
from modelsearch.trialstore import (ABANDONED, COMPLETED, DIVERGED, ENSEMBLE, FAILED, INTERRUPTED, RUNNING, SEARCH,
                                    STOPPED, STUDENT, TrialStore)


def _model(trial) -> dict | None:
    if trial is None:
        return None
    return {"trial_id": trial.trial_id, "architecture": trial.spec, "metrics": trial.metrics,
            "num_params": trial.num_params, "teacher_id": trial.teacher_id,
            "saved_model": os.path.join(trial.model_uri, SERVING_DIR)}


def kept_student(store: TrialStore, study: str, trials):
    """The student the Distiller kept (its latest "student" decision) among `trials`; a study distilled before
    students were chosen among several has no such decision: its latest completed student."""
    by_id = {t.trial_id: t for t in trials if t.kind == STUDENT and t.state == COMPLETED}
    for decision in reversed(store.decisions(study, STUDENT)):
        if decision.get("kept_trial_id") in by_id:
            return by_id[decision["kept_trial_id"]]
    return max(by_id.values(), key=lambda t: t.trial_id, default=None)


def build_summary(store: TrialStore, study: str, pushed_to: str | None = None,
                  push_destination: str = "") -> dict:
    """What the study holds now on its current data version; `pushed_to` is the version directory the Pusher
    wrote this run, if any."""
    trials = store.current_trials(study)
    search = [t for t in trials if t.kind == SEARCH]
    completed = [t for t in search if t.state == COMPLETED]
    best = max(completed, key=lambda t: (score(t), -t.trial_id), default=None)
    ensemble = max((t for t in trials if t.kind == ENSEMBLE and t.state == COMPLETED), key=lambda t: t.trial_id,
                   default=None)
    return {
        "study": study,
        "data_version": store.data_version(study),
        "trials_completed": len(completed),
        "trials_stopped": sum(t.state == STOPPED for t in search),  # cut short by the median rule: evidence
        "trials_failed": sum(t.state == FAILED for t in search),
        "trials_diverged": sum(t.state == DIVERGED for t in search),
        "trials_abandoned": sum(t.state == ABANDONED for t in search),  # lost with their trainer, retried
        "trials_interrupted": sum(t.state == INTERRUPTED for t in search),  # lost with their run, retried
        "trials_running": sum(t.state == RUNNING for t in search),
        "best": None if best is None else {
            "trial_id": best.trial_id,
            "architecture": best.spec,
            "metrics": best.metrics,
            "num_params": best.num_params,
            "parent_id": best.parent_id,
            "mutation": best.mutation,
            "saved_model": os.path.join(best.model_uri, SERVING_DIR),
        },
        "ensemble": _model(ensemble),
        "student": _model(kept_student(store, study, trials)),  # the kept one of the students tried
        "push": push_summary(store, study, pushed_to, push_destination),
        "pareto": pareto(completed),
    }


def pareto(completed) -> list[dict]:
    """The completed search trials on the Pareto front of the validation metric against parameters (and
    latency, when measured: modelsearch/objective.py), by parameters, smallest first (without latency each
    next one is also better on the metric). Each entry's metrics are the objective's: val_accuracy
    (classification) or val_loss (regression), objective, and latency_ms when measured."""
    def metrics(m: dict) -> dict:
        metric = "val_accuracy" if "val_accuracy" in m else "val_loss"
        return {k: m[k] for k in (metric, "objective", "latency_ms") if k in m}

    return [{"trial_id": t.trial_id, "num_params": t.num_params, "train_seconds": t.train_seconds,
             "metrics": metrics(t.metrics)} for t in pareto_front(completed)]


def push_summary(store: TrialStore, study: str, pushed_to: str | None, push_destination: str) -> dict:
    if not push_destination:
        return {"pushed": False, "reason": "no push destination given (--push-destination DIR)", "version_path": None}
    decisions = store.decisions(study, "push")
    if not decisions:
        return {"pushed": False, "reason": "the run ended before the push decision", "version_path": None}
    decision = decisions[-1]
    return {"pushed": bool(decision["pushed"] and pushed_to), "reason": decision["reason"],
            "version_path": pushed_to if decision["pushed"] else None,
            "winner_trial_id": decision.get("winner_trial_id"), "winner_kind": decision.get("winner_kind"),
            # What decided (validation) and what is only reported (test), for the winner and the last push.
            "validation": decision.get("validation"), "test": decision.get("test"),
            "previous_version": decision.get("previous_version"),
            "previous_validation": decision.get("previous_validation"), "previous_test": decision.get("previous_test")}


def write_summary(store: TrialStore, study: str, output_dir: str, pushed_to: str | None = None,
                  push_destination: str = "") -> dict:
    summary = build_summary(store, study, pushed_to, push_destination)
    write_json_atomically(os.path.join(output_dir, "summary.json"), summary)
    return summary


def write_json_atomically(path: str, value) -> None:
    """Writes a JSON file whole or not at all: a run killed while writing leaves the previous file, never a
    truncated one (the new text goes to a temporary file in the same folder, renamed over the old)."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
