"""The ModelSelector's work: pick the winner by the push policy and bless it only if it beats the last push.

Candidates are the study's best search trial, the ensemble and the student. The policy (config "push")
picks one on validation; then the winner and the last pushed model (the newest version under the push
destination) are both served on THIS run's raw validation rows (`Raw-validation/`: a scheduled run that meets
new data compares them on the new data). The winner is blessed for TFX's Pusher only if it is better there;
either way the decision and its reason are recorded in the trial store. Both models are also served on the
raw test rows, but those scores are only reported: a daily run that chose on test would select on it again
and again, and its test accuracy would no longer be held out.
"""
from __future__ import annotations

import os
import sys

from modelsearch.config import SearchConfig
from modelsearch.exploit import better_on_validation, choose_winner
from modelsearch.export import SERVING_DIR, read_schema
from modelsearch.raw_examples import evaluate_saved_model
from modelsearch.trialstore import TrialStore


def latest_pushed(base_directory: str) -> str | None:
    """The newest version directory a Pusher wrote under `base_directory` (`<base>/<version>/saved_model.pb`)."""
    import tensorflow as tf

    if not base_directory or not tf.io.gfile.isdir(base_directory):
        return None
    versions = [name.rstrip("/") for name in tf.io.gfile.listdir(base_directory)]
    versions = [v for v in versions if v.isdigit()
                and tf.io.gfile.exists(os.path.join(base_directory, v, "saved_model.pb"))]
    return os.path.join(base_directory, max(versions, key=int)) if versions else None


def decide(store: TrialStore, study: str, config: SearchConfig, candidates: list, examples_dir: str,
           transform_dir: str, push_destination: str) -> dict:
    """The push decision: {"pushed", "reason", "winner_trial_id", "winner_kind", ...} with the served scores
    ({"accuracy"} or {"mse"}) of the winner and the last pushed model: "validation" and "previous_validation"
    (what decides), "test" and "previous_test" (reported only); "previous_*" are None when nothing was pushed
    or the pushed model cannot serve this data."""
    schema = read_schema(transform_dir)
    policy, max_params = config.push["policy"], config.push["max_params"]
    winner, why = choose_winner(candidates, policy, max_params)
    decision = {"policy": policy, "max_params": max_params, "destination": push_destination,
                "candidates": [t.trial_id for t in candidates if t is not None]}
    if winner is None:
        return {**decision, "pushed": False, "reason": why, "winner_trial_id": None}
    decision.update(winner_trial_id=winner.trial_id, winner_kind=winner.kind, num_params=winner.num_params,
                    saved_model=os.path.join(winner.model_uri, SERVING_DIR), choice=why)
    served = {split: evaluate_saved_model(decision["saved_model"], examples_dir, schema, split)
              for split in ("validation", "test")}
    previous_dir, previous = latest_pushed(push_destination), {"validation": None, "test": None}
    if previous_dir:
        try:
            previous = {split: evaluate_saved_model(previous_dir, examples_dir, schema, split)
                        for split in ("validation", "test")}
        except Exception as e:  # e.g. pushed for other columns: it cannot serve this data at all
            print(f"[modelsearch] the last pushed model {previous_dir} cannot serve this data ({e}); "
                  "replacing it", file=sys.stderr)
    push, reason = better_on_validation(schema["task"]["type"], served["validation"], previous["validation"])
    if previous_dir and previous["validation"] is None:
        reason = "the last pushed model cannot serve this data"
    return {**decision, "pushed": push, "reason": reason, "validation": served["validation"],
            "test": served["test"], "previous_version": previous_dir,
            "previous_validation": previous["validation"], "previous_test": previous["test"]}
