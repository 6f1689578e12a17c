"""The Ensembler's work: ensembles of the study's best trials, chosen on validation, exported as one model.

Three ensembles are compared (config "ensemble.methods"): the average of the top_k trials' predictions,
learned weights over them, and replicas (the best architecture retrained with other seeds and data
shuffles, averaged with it). Every choice is made on the validation split; the test split is only
evaluated, to be reported. Learned weights are cross-fitted on validation (`cross_fitted_weights`): the
split is cut into mixture.FOLDS deterministic folds, weights fitted on the other folds predict each fold,
and the method's validation score pools those held-out predictions, so "weighted" is not favoured over
"average" for having been fitted on the examples it is scored on. The weights exported are then fitted on
the whole validation split. The winner on validation is recorded as an "ensemble" trial (members, weights,
every method's scores in its spec; members as MLMD inputs) and exported with the raw-feature serving
signature. Every split is streamed (modelsearch/data.py).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from modelsearch import data, latency, objective
from modelsearch.config import SearchConfig
from modelsearch.exploit import completed_search, ranked
from modelsearch.export import SERVING_DIR, export_serving_model, load_trial_model, read_schema, write_spec
from modelsearch.mixture import FOLDS
from modelsearch.training import evaluate, start_and_run
from modelsearch.trialstore import COMPLETED, ENSEMBLE, REPLICA, Trial, TrialStore

REPLICA_SEED_STEP = 7919  # replica r of a trial trains with seed + r * step: other init and shuffles
# Where learned weights come from, recorded in the ensemble's spec: an ensemble recorded with weights fitted
# elsewhere (older versions fitted them on train) is not reused by a rerun.
WEIGHTS_FIT = "validation, cross-fitted"


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
            if t.spec.get("pool") == pool and t.spec.get("settings") == settings
            and t.spec.get("weights_fit") == WEIGHTS_FIT]
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

    splits = {s: data.dataset(examples_dir, s, schema) for s in ("validation", "test")}
    models = {t.trial_id: load_trial_model(store, t, schema, config) for ts in methods.values() for t in ts}
    compared = {}
    for method, members in methods.items():
        nets = [models[t.trial_id] for t in members]
        weights, extra, validation = [1.0 / len(members)] * len(members), {}, None
        if method == "weighted":
            crossed = cross_fitted_weights(nets, schema, splits["validation"])
            if crossed is None:
                print(f"[modelsearch] no weighted ensemble: the validation split has fewer than {FOLDS} examples "
                      "to cross-fit its weights on", file=sys.stderr, flush=True)
                continue
            extra["fold_weights"], validation = crossed
            weights = learn_weights(nets, schema, splits["validation"])
        model = blocks.compile_model(ensemble_model(nets, schema, weights), {"knobs": {}}, task)
        # The weighted ensemble's validation metrics are the cross-fitted ones (those of its final weights,
        # fitted on all of validation, would flatter it); the test metrics are the exported model's, reported.
        metrics = {**(validation or evaluate(model, splits["validation"], "val", schema)),
                   **evaluate(model, splits["test"], "test", schema)}
        # By the configured objective with the ensemble's parameters; its latency, when a latency target is
        # set, is measured once the chosen one is exported (below): the methods are compared without it.
        metrics["objective"] = objective.value(metrics, task["type"], model.count_params(), None, config.objective)
        compared[method] = {"members": [t.trial_id for t in members], "weights": weights, **extra,
                            "metrics": metrics, "model": model}
    if not compared:
        return None
    # Chosen on validation only; ties go to the earlier method in the configured order.
    method = max(compared, key=lambda m: (compared[m]["metrics"]["objective"], -settings["methods"].index(m)))
    chosen = compared[method]
    spec = {"method": method, "members": chosen["members"], "weights": chosen["weights"], "pool": pool,
            "settings": settings, "weights_fit": WEIGHTS_FIT,
            "compared": {m: {k: v for k, v in c.items() if k != "model"} for m, c in compared.items()}}
    trial_id = store.start_trial(study, spec, mutation=f"ensemble:{method}", kind=ENSEMBLE,
                                 input_ids=tuple(chosen["members"]))
    write_spec(spec, model_dir)
    export_serving_model(chosen["model"], transform_dir, schema, os.path.join(model_dir, SERVING_DIR))
    metrics, num_params = dict(chosen["metrics"]), chosen["model"].count_params()
    if objective.measures_latency(config.objective):  # the recorded objective counts what serving it costs
        metrics["latency_ms"] = latency.measure(os.path.join(model_dir, SERVING_DIR), examples_dir, schema)
        metrics["objective"] = objective.value(metrics, task["type"], num_params, metrics["latency_ms"],
                                               config.objective)
    store.complete_trial(trial_id, metrics, num_params, 0, model_dir, time.time() - started)
    trial = store.get(trial_id)
    scores = ", ".join(f"{m}{' (cross-fitted)' if m == 'weighted' else ''} {c['metrics']['objective']:.4f}"
                       for m, c in compared.items())
    print(f"[modelsearch] ensemble trial {trial_id}: {method} of {chosen['members']} weights "
          f"{np.round(chosen['weights'], 3).tolist()} (validation: {scores}) test "
          f"{_test_score(trial.metrics)} params={trial.num_params:,}", file=sys.stderr, flush=True)
    return trial


def cross_fitted_weights(members: list, schema: dict, validation, count: int = FOLDS):
    """(weights fitted on all folds but k, for each fold k; validation metrics pooled over the folds, each fold
    predicted by the weights not fitted on it), or None when a fold would be empty (too few examples).

    Folds are mixture.folds of the validation split; metrics are means, pooled weighted by fold size."""
    import blocks
    from modelsearch.mixture import count_examples, ensemble_model, fold_sizes, folds, learn_weights

    size = data.split_size(schema, "validation")
    size = count_examples(validation) if size is None else size
    sizes = fold_sizes(size, count)
    if min(sizes) == 0:
        return None
    fold_weights, totals = [], {}
    for k in range(count):
        rest, held = folds(validation, k, size, count)
        weights = learn_weights(members, schema, rest)
        model = blocks.compile_model(ensemble_model(members, schema, weights), {"knobs": {}}, schema["task"])
        for name, value in evaluate(model, held, "val", schema).items():
            totals[name] = totals.get(name, 0.0) + value * sizes[k]
        fold_weights.append(weights)
    return fold_weights, {name: total / size for name, total in totals.items()}


def _test_score(metrics: dict) -> str:
    key = "test_accuracy" if "test_accuracy" in metrics else "test_loss"
    return f"{key.removeprefix('test_')}={metrics[key]:.4f}"
