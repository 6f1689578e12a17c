"""One trial's training: build the candidate, warm-start it from its parent, train, evaluate, export, record.

Plain functions, no orchestrator: the trainer loop (modelsearch/trainer_loop.py) runs `run_trial` in a
process of its own per trial, and the exploit stages run it for replicas and students. Never decides
what to train: the candidate arrives as a reserved trial (modelsearch/search.py) or from the exploit
decisions (modelsearch/exploit.py).
"""
from __future__ import annotations

import resource
import sys
import time
import traceback

from modelsearch import data
from modelsearch.config import SearchConfig
from modelsearch.export import build_compiled, load_trial_model, read_schema, save_trial_model
from modelsearch.trialstore import COMPLETED, SEARCH, Trial, TrialStore


def evaluate(model, dataset, prefix: str) -> dict:
    values = model.evaluate(dataset, verbose=0, return_dict=True)
    return {f"{prefix}_{k}": float(v) for k, v in values.items()}


def objective(metrics: dict, task: dict) -> float:
    """What the search maximises: validation accuracy, or minus the validation loss for regression."""
    return metrics["val_accuracy"] if task["type"] == "classification" else -metrics["val_loss"]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_and_run(candidate: dict, examples_dir: str, transform_dir: str, store: TrialStore, study: str,
                  config: SearchConfig, model_dir: str) -> Trial:
    """Records an exploit-phase candidate (a replica, a student) as a running trial, trains it in this
    process and returns the finished trial. A candidate is {"spec", "parent_id", "mutation", "seed"} plus,
    optionally, "teacher_id" and "distillation", "kind", and "warm_start" (False: the parent is lineage only)."""
    trial_id = store.start_trial(study, candidate["spec"], parent_id=candidate.get("parent_id"),
                                 mutation=candidate.get("mutation", ""), seed=int(candidate.get("seed", 0)),
                                 teacher_id=candidate.get("teacher_id"), kind=candidate.get("kind", SEARCH),
                                 distillation=candidate.get("distillation"))
    return run_trial(store.get(trial_id), examples_dir, transform_dir, store, config, model_dir,
                     warm_start=candidate.get("warm_start", True))


def run_trial(trial: Trial, examples_dir: str, transform_dir: str, store: TrialStore, config: SearchConfig,
              model_dir: str, warm_start: bool = True) -> Trial:
    """Trains a recorded running trial and records its end (completed, or failed with the reason)."""
    started = time.time()
    try:
        metrics, num_params, inherited = train(trial, examples_dir, transform_dir, store, config, model_dir,
                                               warm_start)
        store.complete_trial(trial.trial_id, metrics, num_params, inherited, model_dir, time.time() - started,
                             peak_rss_mb())
    except Exception:  # a failed candidate is a result of the search, not a crash of the pipeline
        store.fail_trial(trial.trial_id, traceback.format_exc())
    trial = store.get(trial.trial_id)
    print(progress_line(trial, time.time() - started), file=sys.stderr, flush=True)
    return trial


def train(trial: Trial, examples_dir: str, transform_dir: str, store: TrialStore, config: SearchConfig,
          model_dir: str, warm_start: bool = True) -> tuple[dict, int, int]:
    """(metrics, parameter count, inherited tensors) of the trained, exported trial."""
    import keras

    from modelsearch.distillation import compile_for_distillation
    from modelsearch.weight_sharing import copy_matching_weights

    schema = read_schema(transform_dir)
    task, spec = schema["task"], trial.spec
    keras.utils.set_random_seed(trial.seed)
    model = build_compiled(spec, schema, config)
    inherited, start = 0, None
    if trial.parent_id is not None and warm_start:
        inherited = copy_matching_weights(model, load_trial_model(store, store.get(trial.parent_id), schema, config))
        start = model.get_weights() if inherited else None
    batch = int(spec["knobs"].get("batch_size", 64))
    train_data = data.dataset(examples_dir, "train", schema, batch, shuffle=True, seed=trial.seed)
    val_data, test_data = (data.dataset(examples_dir, split, schema) for split in ("validation", "test"))
    fit_val, monitor = val_data, "val_loss"
    if trial.teacher_id is not None:
        teacher = load_trial_model(store, store.get(trial.teacher_id), schema, config)
        train_data, fit_val = data.with_teacher(train_data, teacher), data.with_teacher(val_data, teacher)
        compile_for_distillation(model, spec, task, trial.distillation)
        monitor = "val_label_loss"  # stop on the true labels, not on agreement with the teacher
    stop = keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=config.patience,
                                         restore_best_weights=True)
    history = model.fit(train_data, validation_data=fit_val, epochs=config.max_epochs, callbacks=[stop],
                        shuffle=False, verbose=0)  # the dataset shuffles itself
    if trial.teacher_id is not None:
        import blocks
        blocks.compile_model(model, spec, task)  # plain loss and metrics for evaluation
    metrics = evaluate(model, val_data, "val")
    if start is not None:
        # A warm-started trial never ends worse on validation than the weights it inherited.
        trained = model.get_weights()
        model.set_weights(start)
        initial = evaluate(model, val_data, "val")
        if objective(initial, task) > objective(metrics, task):
            metrics, history.history["loss"] = initial, []
        else:
            model.set_weights(trained)
    metrics.update(evaluate(model, test_data, "test"))
    metrics["objective"] = objective(metrics, task)
    metrics["epochs"] = len(history.history["loss"])
    save_trial_model(model, spec, transform_dir, schema, model_dir)
    return metrics, model.count_params(), inherited


def progress_line(trial: Trial, seconds: float) -> str:
    arch = "+".join(b["name"] for b in trial.spec["blocks"]) if "blocks" in trial.spec else trial.kind
    origin = f"from {trial.parent_id} by {trial.mutation}" if trial.parent_id is not None else "random"
    if trial.mutation.startswith("reevaluate:"):  # the same architecture again, another seed, from scratch
        origin = f"re-evaluation of {trial.mutation.split(':', 1)[1]}"
    if trial.kind != SEARCH:
        origin = f"{trial.kind} {origin}"
    if trial.teacher_id is not None:
        origin += (f" teacher={trial.teacher_id} ({trial.distillation.get('mode')} "
                   f"w={trial.distillation.get('weight', 0):.2f})")
    where = f"trial {trial.trial_id}" + (f" (#{trial.number})" if trial.number >= 0 else "")
    if trial.state != COMPLETED:
        last = trial.error.strip().splitlines()[-1] if trial.error.strip() else "unknown error"
        return f"[modelsearch] {where} {trial.state.upper()} ({arch}, {origin}): {last}"
    m = trial.metrics
    score = (f"val_accuracy={m['val_accuracy']:.4f} test_accuracy={m['test_accuracy']:.4f}"
             if "val_accuracy" in m else f"val_loss={m['val_loss']:.4g} test_loss={m['test_loss']:.4g}")
    depth = len(trial.spec.get("blocks", []))
    return (f"[modelsearch] {where}: {score} params={trial.num_params:,} depth={depth} [{arch}] {origin} "
            f"inherited={trial.num_inherited} ({seconds:.0f}s)")
