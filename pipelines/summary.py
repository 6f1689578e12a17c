"""summary.json: what a run leaves in its output directory, read from the trial store."""
from __future__ import annotations

import json
import os

from components.trainer.executor import SERVING_DIR
from modelsearch.strategies.base import score
from modelsearch.trialstore import COMPLETED, FAILED, TrialStore


def build_summary(store: TrialStore, study: str) -> dict:
    trials = store.trials(study)
    completed = [t for t in trials if t.state == COMPLETED]
    best = max(completed, key=lambda t: (score(t), -t.trial_id), default=None)
    return {
        "study": study,
        "trials_completed": len(completed),
        "trials_failed": sum(t.state == FAILED for t in trials),
        "best": None if best is None else {
            "trial_id": best.trial_id,
            "architecture": best.spec,
            "metrics": best.metrics,
            "num_params": best.num_params,
            "parent_id": best.parent_id,
            "mutation": best.mutation,
            "saved_model": os.path.join(best.model_uri, SERVING_DIR),
        },
    }


def write_summary(store: TrialStore, study: str, output_dir: str) -> dict:
    summary = build_summary(store, study)
    with open(os.path.join(output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary
