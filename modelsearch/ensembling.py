"""The Ensembler's work: ensembles of the study's best trials, chosen on validation, exported as one model.

Three ensembles are compared (config "ensemble.methods"): the average of the top_k trials' predictions,
learned weights over them (fitted on the train split), and replicas (the best architecture retrained
with other seeds and data shuffles, averaged with it). The winner on validation is recorded as an
"ensemble" trial (members, weights and every method's scores in its spec; members as MLMD inputs)
and exported with the raw-feature serving signature. Every split is streamed (modelsearch/data.py).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from modelsearch import data
from modelsearch.config import SearchConfig
from modelsearch.exploit import completed_search, ranked
from modelsearch.export import SERVING_DIR, export_serving_model, load_trial_model, read_schema, write_spec
from modelsearch.training import evaluate, objective, start_and_run
from modelsearch.trialstore import COMPLETED, ENSEMBLE, REPLICA, Trial, TrialStore

REPLICA_SEED_STEP = 7919  # replica r of a trial trains with seed + r * step: other init and shuffles


def replicas_of(best: Trial, count: int, store: TrialStore, study: str, config: SearchConfig,
                examples_dir: str, transform_dir: str, model_dir: str) -> list[Trial]:
    """`count` completed replicas of `best`: those already in the study, then new ones trained here."""
    done = [t for t in store.completed(study, kinds=(REPLICA,)) if t.parent_id == best.trial_id]
    for r in range(len(done) + 1, count + 1):
        replica = start_and_run(
            {"spec": best.spec, "parent_id": best.trial_id, "mutation": f"replica:{r}",
             "seed": best.seed + r * REPLICA_SEED_STEP, "kind": REPLICA, "warm_start": False},
            examples_dir, transform_dir, store, study, config, os.path.join(model_dir, f"replica_{r}"))
        if replica.state == COMPLETED:
            done.append(replica)
    return done[:count]


def build_ensemble(store: TrialStore, study: str, config: SearchConfig, examples_dir: str, transform_dir: str,
                   model_dir: str) -> Trial | None:
    """Builds, compares and records the ensembles; returns the chosen ensemble trial (None: too few trials)."""
    import blocks
    from modelsearch.mixture import ensemble_model, learn_weights

    schema, settings = read_schema(transform_dir), config.ensemble
    task = schema["task"]
    top = ranked(completed_search(store.current_trials(study)))[: settings["top_k"]]
    if not top:
        return None
    pool = [t.trial_id for t in top]
    done = [t for t in store.completed(study, kinds=(ENSEMBLE,))
            if t.spec.get("pool") == pool and t.spec.get("settings") == settings]
    if done:  # a rerun (after a kill, or with nothing new to search) does not build the same ensembles again
        print(f"[modelsearch] ensemble trial {done[-1].trial_id} of the same trials is already in the study",
              file=sys.stderr, flush=True)
        return done[-1]
    started = time.time()
    methods = {}  # method -> member trials (weights come later)
    if "average" in settings["methods"] and len(top) > 1:
        methods["average"] = top
    if "weighted" in settings["methods"] and len(top) > 1:
        methods["weighted"] = top
    if "replicas" in settings["methods"] and settings["replicas"] > 0:
        replicas = replicas_of(top[0], settings["replicas"], store, study, config, examples_dir, transform_dir,
                               model_dir)
        if replicas:
            methods["replicas"] = [top[0], *replicas]
    if not methods:
        return None

    splits = {s: data.dataset(examples_dir, s, schema) for s in ("train", "validation", "test")}
    models = {t.trial_id: load_trial_model(store, t, schema, config) for ts in methods.values() for t in ts}
    compared = {}
    for method, members in methods.items():
        weights = [1.0 / len(members)] * len(members)
        if method == "weighted":
            weights = learn_weights([models[t.trial_id] for t in members], schema, splits["train"])
        model = blocks.compile_model(ensemble_model([models[t.trial_id] for t in members], schema, weights),
                                     {"knobs": {}}, task)
        metrics = {**evaluate(model, splits["validation"], "val"), **evaluate(model, splits["test"], "test")}
        metrics["objective"] = objective(metrics, task)
        compared[method] = {"members": [t.trial_id for t in members], "weights": weights, "metrics": metrics,
                            "model": model}
    # Chosen on validation only; ties go to the earlier method in the configured order.
    method = max(compared, key=lambda m: (compared[m]["metrics"]["objective"], -settings["methods"].index(m)))
    chosen = compared[method]
    spec = {"method": method, "members": chosen["members"], "weights": chosen["weights"], "pool": pool,
            "settings": settings,
            "compared": {m: {k: v for k, v in c.items() if k != "model"} for m, c in compared.items()}}
    trial_id = store.start_trial(study, spec, mutation=f"ensemble:{method}", kind=ENSEMBLE,
                                 input_ids=tuple(chosen["members"]))
    write_spec(spec, model_dir)
    export_serving_model(chosen["model"], transform_dir, schema, os.path.join(model_dir, SERVING_DIR))
    store.complete_trial(trial_id, chosen["metrics"], chosen["model"].count_params(), 0, model_dir,
                         time.time() - started)
    trial = store.get(trial_id)
    scores = ", ".join(f"{m} {c['metrics']['objective']:.4f}" for m, c in compared.items())
    print(f"[modelsearch] ensemble trial {trial_id}: {method} of {chosen['members']} weights "
          f"{np.round(chosen['weights'], 3).tolist()} (validation: {scores}) test "
          f"{_test_score(trial.metrics)} params={trial.num_params:,}", file=sys.stderr, flush=True)
    return trial


def _test_score(metrics: dict) -> str:
    key = "test_accuracy" if "test_accuracy" in metrics else "test_loss"
    return f"{key.removeprefix('test_')}={metrics[key]:.4f}"
