"""Trainer's work: build one candidate, warm-start it from its parent, train, export, record. Never decides."""
from __future__ import annotations

import json
import os
import sys
import time
import traceback

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.artifacts import CANDIDATES_FILE
from components.trial_models import SERVING_DIR, WEIGHTS_FILE, build_compiled, load_trial_model, read_schema
from modelsearch.config import SearchConfig
from modelsearch.trialstore import SEARCH, Trial, TrialStore


def evaluate(model, x, y, task: dict, prefix: str) -> dict:
    values = model.evaluate(x, y, verbose=0, return_dict=True, batch_size=256)
    return {f"{prefix}_{k}": float(v) for k, v in values.items()}


def train_trial(candidate: dict, examples_dir: str, transform_dir: str, store: TrialStore, study: str,
                config: SearchConfig, model_dir: str) -> Trial:
    """Trains one candidate and records it as a trial (completed or failed); returns the trial.

    A candidate is {"spec", "parent_id", "mutation", "round", "seed"} plus, optionally, "teacher_id"
    and "distillation" (learn from that trial's outputs too), "kind" (search, replica, student) and
    "warm_start" (False: record the parent as lineage but start from fresh weights)."""
    import keras
    from components.preprocess.executor import load_split
    from components.trainer.distillation import compile_for_distillation, pack_targets
    from components.trainer.weight_sharing import copy_matching_weights

    schema = read_schema(transform_dir)
    task = schema["task"]
    spec, parent_id, seed = candidate["spec"], candidate.get("parent_id"), int(candidate.get("seed", 0))
    teacher_id, distillation = candidate.get("teacher_id"), candidate.get("distillation") or {}
    trial_id = store.start_trial(study, spec, parent_id=parent_id, mutation=candidate.get("mutation", ""),
                                 round=int(candidate.get("round", 0)), seed=seed, teacher_id=teacher_id,
                                 kind=candidate.get("kind", SEARCH), distillation=distillation)
    started = time.time()
    try:
        keras.utils.set_random_seed(seed)
        model = build_compiled(spec, schema, config)
        inherited, start = 0, None
        if parent_id is not None and candidate.get("warm_start", True):
            inherited = copy_matching_weights(model, load_trial_model(store, store.get(parent_id), schema, config))
            start = model.get_weights() if inherited else None
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
            load_split(examples_dir, split, schema) for split in ("train", "validation", "test"))
        monitor = "val_loss"
        if teacher_id is not None:
            teacher = load_trial_model(store, store.get(teacher_id), schema, config)
            y_train, y_val_fit = (pack_targets(y, teacher.predict(x, batch_size=1024, verbose=0))
                                  for x, y in ((x_train, y_train), (x_val, y_val)))
            compile_for_distillation(model, spec, task, distillation)
            monitor = "val_label_loss"  # stop on the true labels, not on agreement with the teacher
        else:
            y_val_fit = y_val
        stop = keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=config.patience,
                                             restore_best_weights=True)
        history = model.fit(x_train, y_train, validation_data=(x_val, y_val_fit), epochs=config.max_epochs,
                            batch_size=int(spec["knobs"].get("batch_size", 64)), callbacks=[stop], verbose=0)
        if teacher_id is not None:
            import blocks
            blocks.compile_model(model, spec, task)  # plain loss and metrics for evaluation
        metrics = evaluate(model, x_val, y_val, task, "val")
        if start is not None:
            # A warm-started trial never ends worse on validation than the weights it inherited.
            trained = model.get_weights()
            model.set_weights(start)
            initial = evaluate(model, x_val, y_val, task, "val")
            if objective(initial, task) > objective(metrics, task):
                metrics, history.history["loss"] = initial, []
            else:
                model.set_weights(trained)
        metrics.update(evaluate(model, x_test, y_test, task, "test"))
        metrics["objective"] = objective(metrics, task)
        metrics["epochs"] = len(history.history["loss"])
        save_trial_model(model, spec, transform_dir, schema, model_dir)
        store.complete_trial(trial_id, metrics, model.count_params(), inherited, model_dir, time.time() - started)
    except Exception:  # a failed candidate is a result of the search, not a crash of the pipeline
        store.fail_trial(trial_id, traceback.format_exc())
    trial = store.get(trial_id)
    print(progress_line(trial, time.time() - started), file=sys.stderr, flush=True)
    return trial


def objective(metrics: dict, task: dict) -> float:
    """What the search maximises: validation accuracy, or minus the validation loss for regression."""
    return metrics["val_accuracy"] if task["type"] == "classification" else -metrics["val_loss"]


def save_trial_model(model, spec: dict, transform_dir: str, schema: dict, model_dir: str) -> None:
    """Weights and spec (to rebuild it), and the serving SavedModel (raw features in) for the Pusher."""
    from components.preprocess.serving import export_serving_model
    os.makedirs(model_dir, exist_ok=True)
    model.save_weights(os.path.join(model_dir, WEIGHTS_FILE))
    with open(os.path.join(model_dir, "spec.json"), "w") as f:
        json.dump(spec, f, indent=1)
    export_serving_model(model, transform_dir, schema, os.path.join(model_dir, SERVING_DIR))


def progress_line(trial: Trial, seconds: float) -> str:
    depth = len(trial.spec["blocks"])
    arch = "+".join(b["name"] for b in trial.spec["blocks"])
    origin = f"from {trial.parent_id} by {trial.mutation}" if trial.parent_id is not None else "random"
    if trial.mutation.startswith("reevaluate:"):  # the same architecture again, another seed, from scratch
        origin = f"re-evaluation of {trial.mutation.split(':', 1)[1]}"
    if trial.kind != SEARCH:
        origin = f"{trial.kind} {origin}"
    if trial.teacher_id is not None:
        origin += f" teacher={trial.teacher_id} ({trial.distillation.get('mode')} w={trial.distillation.get('weight', 0):.2f})"
    if trial.state != "completed":
        last = trial.error.strip().splitlines()[-1] if trial.error.strip() else "unknown error"
        return f"[modelsearch] trial {trial.trial_id} round {trial.round} FAILED ({arch}, {origin}): {last}"
    m = trial.metrics
    score = (f"val_accuracy={m['val_accuracy']:.4f} test_accuracy={m['test_accuracy']:.4f}"
             if "val_accuracy" in m else f"val_loss={m['val_loss']:.4g} test_loss={m['test_loss']:.4g}")
    return (f"[modelsearch] trial {trial.trial_id} round {trial.round}: {score} params={trial.num_params:,} "
            f"depth={depth} [{arch}] {origin} inherited={trial.num_inherited} ({seconds:.0f}s)")


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        with open(os.path.join(artifact_utils.get_single_uri(input_dict["candidates"]), CANDIDATES_FILE)) as f:
            candidates = json.load(f)
        index = int(exec_properties["index"])
        if index >= len(candidates):
            return  # the search space ran out of new architectures: nothing left to train
        model_dir = artifact_utils.get_single_uri(output_dict["model"])
        trial = train_trial(
            candidates[index], artifact_utils.get_single_uri(input_dict["transformed_examples"]),
            artifact_utils.get_single_uri(input_dict["transform_graph"]),
            TrialStore(exec_properties["trial_store"]), exec_properties["study"],
            SearchConfig.from_json(exec_properties["search_config"]), model_dir)
        [model] = output_dict["model"]
        model.set_int_custom_property("trial_id", trial.trial_id)
        model.set_string_custom_property("trial_state", trial.state)
