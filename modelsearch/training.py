"""One trial's training: build the candidate, warm-start it from its parent, train, evaluate, export, record.

A search trial whose curve falls below the completed trials' median stops early (the median rule: the
decision is modelsearch/early_stopping.py's, a pure function of curves; here it is only asked every epoch),
and is evaluated, exported and recorded as STOPPED with its curve and the reason. A search trial still training
when the search's time budget runs out (modelsearch/search.py, open_search) ends after its current epoch and is
recorded as COMPLETED from its best epoch's weights, with a note: unlike the median rule's stop, the clock says
nothing against the model, which is a fair candidate for the exploit stages (with a short budget the cut trials
may be the only or the best ones). Every epoch prints one line (epoch_line), so a long trial is never silent.

Plain functions, no orchestrator: the trainer loop (modelsearch/trainer_loop.py) runs `run_trial` in a
process of its own per trial, and the exploit stages run it for replicas and students. Never decides
what to train: the candidate arrives as a reserved trial (modelsearch/search.py) or from the exploit
decisions (modelsearch/exploit.py).
"""
from __future__ import annotations

import math
import os
import resource
import sys
import time
import traceback

from modelsearch import data, early_stopping, latency, objective
from modelsearch.config import SearchConfig
from modelsearch.export import SERVING_DIR, build_compiled, load_trial_model, read_schema, save_trial_model
from modelsearch.label_units import in_label_units
from modelsearch.trialstore import (COMPLETED, DIVERGED, EVIDENCE, FAILED, INTERRUPTED, SEARCH, STOPPED, Trial,
                                    TrialStore)

TENSORBOARD_DIR = "tensorboard"  # under a trial's model directory: its TensorBoard logs
# How often a trial under the median rule re-reads the completed trials' curves: the read costs about a
# trial store query (only what changed since the last one), and a trial completed a few seconds ago need not
# be in the median yet.
CURVES_REFRESH_SECONDS = 5.0
KEPT_PARENT_WEIGHTS = "kept_parent_weights"  # a metric: 1.0 when training ended below the inherited weights
# Batches per compiled call in a trial's fit and evaluations: for a small model, Keras's per-call Python and
# dispatch overhead outweighs the step itself. The same steps in the same order (the results are identical);
# only batch-level callbacks would see fewer calls, and none is used. Bounded so that a large model's call still
# returns (Ctrl-C, the epoch line) within a few dozen steps.
STEPS_PER_EXECUTION = 32


class Diverged(Exception):
    """The trial's loss or a metric became NaN or infinite: a result of its candidate (e.g. a learning rate
    too high), recorded as such, never as a number."""


def evaluate(model, dataset, prefix: str, schema: dict) -> dict:
    """The model's loss and metrics on a split, in the label's units (regression models train on the scaled
    label: modelsearch/label_units.py), so that the trial store holds real squared errors."""
    values = model.evaluate(dataset, verbose=0, return_dict=True)
    return in_label_units({f"{prefix}_{k}": float(v) for k, v in values.items()}, schema)


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
              model_dir: str, warm_start: bool = True, deadline: float | None = None) -> Trial:
    """Trains a recorded running trial and records its end: completed (with a note if the `deadline`, the
    search's time budget as a time.time(), cut it), stopped early by the median rule (with its metrics, model
    and the reason), or failed, diverged or interrupted with the reason. Whatever ends a trial early (an
    exception, a custom block's sys.exit, Ctrl-C) is recorded, and a trial that did not complete or stop keeps
    no model files."""
    started = time.time()
    try:
        metrics, num_params, inherited, stopped, note = train(trial, examples_dir, transform_dir, store, config,
                                                              model_dir, warm_start, deadline)
        store.complete_trial(trial.trial_id, metrics, num_params, inherited, model_dir, time.time() - started,
                             peak_rss_mb(), state=STOPPED if stopped else COMPLETED, reason=stopped or note or "")
    except KeyboardInterrupt:  # Ctrl-C or the run stopping: the candidate may be tried again
        _discard(model_dir)
        store.fail_trial(trial.trial_id, "interrupted: the run was stopped while the trial trained", INTERRUPTED)
        raise
    except BaseException as e:  # a failed candidate is a result of the search, not a crash of the pipeline
        _discard(model_dir)
        state, reason = failure(e)
        store.fail_trial(trial.trial_id, reason, state)
    trial = store.get(trial.trial_id)
    print(progress_line(trial, time.time() - started), file=sys.stderr, flush=True)
    return trial


def failure(e: BaseException) -> tuple[str, str]:
    """(state, reason) for what ended a trial."""
    if isinstance(e, Diverged):
        return DIVERGED, f"diverged: {e}"
    if isinstance(e, SystemExit):
        return FAILED, (f"the trial's code called sys.exit({e.code!r}) (a custom block?):\n"
                        + "".join(traceback.format_tb(e.__traceback__)))
    return FAILED, traceback.format_exc()


def _discard(model_dir: str) -> None:
    """Removes what a trial that did not complete wrote (its model files), local or gs://."""
    import tensorflow as tf

    try:
        if tf.io.gfile.exists(model_dir):
            tf.io.gfile.rmtree(model_dir)
    except tf.errors.OpError:  # leftovers are harmless: no trial points at them
        pass


class CompletedCurves:
    """The learning curves a running search trial is compared with: those of its study's completed search
    trials on its data version. Read through the process's StudyView of the study (modelsearch/search.py:
    after one full read, only the trials written since), at most every `refresh_seconds`."""

    def __init__(self, store: TrialStore, trial: Trial, refresh_seconds: float = CURVES_REFRESH_SECONDS):
        self.store, self.trial, self.refresh_seconds = store, trial, refresh_seconds
        self._curves, self._read_at = [], None

    def __call__(self) -> list[list]:
        now = time.monotonic()
        if self._read_at is None or now - self._read_at >= self.refresh_seconds:
            from modelsearch.search import study_view
            study = self.trial.study
            trials = study_view(self.store, study).read(self.store, study)
            self._curves = [t.curve for t in trials if t.state == COMPLETED and t.kind == SEARCH and t.curve
                            and t.data_version == self.trial.data_version and t.trial_id != self.trial.trial_id]
            self._read_at = now
        return self._curves


def median_rule(store: TrialStore, trial: Trial, config: SearchConfig, task_type: str):
    """The early-stopping check of a trial: a function of its curve so far that returns the reason to stop it
    now, or None. None instead of a function when the rule does not apply: the config turns it off, the trial
    is not a search candidate (replicas and students train to the end), or it is a re-evaluation (it measures
    the noise of the best architecture; cutting its unlucky seeds would hide that noise)."""
    settings = {**early_stopping.DEFAULTS, **(config.early_stopping or {})}
    if (settings["rule"] == early_stopping.NONE or trial.kind != SEARCH
            or trial.mutation.startswith("reevaluate:")):
        return None
    completed = CompletedCurves(store, trial)

    def check(curve: list) -> str | None:
        epoch = curve[-1]["epoch"] if curve else 0
        if epoch < settings["min_epochs"] or epoch >= config.max_epochs:  # too early; or the last epoch anyway
            return None
        stop = early_stopping.decide(curve, completed(), settings, task_type)
        return stop.reason(config.max_epochs) if stop else None

    return check


def epoch_line(trial_id: int, entry: dict, epochs: int, seconds: float) -> str:
    """One epoch of a training trial, for people: its loss and validation score (accuracy, else the loss; on the
    true labels for a distilled trial)."""
    scores = ("val_label_accuracy", "val_accuracy", "val_label_loss", "val_loss")
    shown = [f"{k} {entry[k]:.4g}" for k in ("loss", next((k for k in scores if k in entry), None)) if k in entry]
    took = f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"
    return f"[modelsearch] trial {trial_id} epoch {entry['epoch']}/{epochs}: {' '.join(shown)} ({took} s)"


def time_budget_cut(deadline: float | None, epoch: int, epochs: int) -> str | None:
    """Why a trial that has trained `epoch` of its `epochs` ends now for the search's time budget, or None."""
    if deadline is None or epoch >= epochs or time.time() < deadline:
        return None
    return f"time budget: the search's time ran out, so the trial ended after epoch {epoch} of {epochs}"


def curve_recorder(store: TrialStore, trial_id: int, should_stop=None, deadline: float | None = None,
                   epochs: int = 0, schema: dict | None = None):
    """A Keras callback that records the learning curve in the trial store after every epoch (the progress
    display and the report read a running trial's epochs there) and stops a trial whose loss or metrics are
    no longer finite, saying where. Checked per epoch, not per batch as keras.callbacks.TerminateOnNaN does:
    reading the loss every batch would wait for every step.

    `should_stop` (median_rule's check): a function of the curve so far that returns why the trial stops now,
    or None; asked after every finite epoch that nothing else ended (place this callback after EarlyStopping,
    so that a trial its patience ends is completed, not stopped). The reason is kept in `stopped`.

    `deadline`: the search's time budget (a time.time(), or None); an epoch that ends past it, with nothing else
    ending the trial, is its last, and the note is kept in `cut`. Each epoch prints its line (of `epochs`).

    With `schema`, the curve is recorded in the label's units like the final metrics (a constant factor per
    data version, so the median rule's order is unchanged, and its margin is in the objective's units, as
    documented). Keras's own logs (EarlyStopping's patience, TensorBoard) stay in the model's units."""
    import keras

    class CurveRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.curve, self.diverged, self.stopped, self._unreadable = [], None, None, False
            self.cut, self._began = None, time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self._began = time.time()

        def on_epoch_end(self, epoch, logs=None):
            entry = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
            entry = in_label_units(entry, schema) if schema else entry
            print(epoch_line(trial_id, entry, epochs, time.time() - self._began), file=sys.stderr, flush=True)
            if self.diverged is None:
                bad = [k for k, v in entry.items() if not math.isfinite(v)]
                if bad:
                    self.diverged = f"{bad[0]} became {entry[bad[0]]} in epoch {epoch + 1}"
                    self.model.stop_training = True
            # A NaN never reaches the store (MLMD's SQLite cannot take it as a number): in the curve it is null.
            self.curve.append({k: (v if math.isfinite(v) else None) for k, v in entry.items()})
            store.record_curve(trial_id, self.curve)
            if should_stop is not None and self.diverged is None and self.stopped is None \
                    and not self.model.stop_training:
                try:
                    self.stopped = should_stop(self.curve)
                except Exception as e:  # the store unreadable for a moment: train on, as without the rule
                    if not self._unreadable:
                        self._unreadable = True
                        print(f"[modelsearch] trial {trial_id}: early stopping could not read the completed "
                              f"trials ({e}); it trains on", file=sys.stderr, flush=True)
                if self.stopped:
                    self.model.stop_training = True
            if self.diverged is None and not self.model.stop_training:
                self.cut = time_budget_cut(deadline, epoch + 1, epochs)
                self.model.stop_training = bool(self.cut)

    return CurveRecorder()


def check_finite(metrics: dict) -> None:
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        name = next(iter(bad))
        raise Diverged(f"{name} is {bad[name]} after training")


def train(trial: Trial, examples_dir: str, transform_dir: str, store: TrialStore, config: SearchConfig,
          model_dir: str, warm_start: bool = True,
          deadline: float | None = None) -> tuple[dict, int, int, str | None, str | None]:
    """(metrics, parameter count, inherited tensors, why the median rule stopped it or None, the time budget's
    note or None) of the trained, exported trial. A trial stopped or cut is evaluated and exported like any
    other, from its best epoch's weights (EarlyStopping restores them whatever ended the training)."""
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
    recorder = curve_recorder(store, trial.trial_id, median_rule(store, trial, config, task["type"]), deadline,
                              config.max_epochs, schema)
    board = keras.callbacks.TensorBoard(os.path.join(model_dir, TENSORBOARD_DIR), profile_batch=0)
    model.steps_per_execution = STEPS_PER_EXECUTION  # read when fit builds its functions (after any compile)
    # The recorder after EarlyStopping: it sees whether patience ended the trial at this epoch.
    history = model.fit(train_data, validation_data=fit_val, epochs=config.max_epochs,
                        callbacks=[stop, recorder, board], shuffle=False, verbose=0)  # the dataset shuffles itself
    if recorder.diverged:
        raise Diverged(recorder.diverged + _hint(spec))
    if trial.teacher_id is not None:
        import blocks
        blocks.compile_model(model, spec, task)  # plain loss and metrics for evaluation
    metrics = evaluate(model, val_data, "val", schema)
    if start is not None:
        # A warm-started trial never ends worse on validation than the weights it inherited (it says so in
        # kept_parent_weights; its epochs were still run, and count).
        trained = model.get_weights()
        model.set_weights(start)
        initial = evaluate(model, val_data, "val", schema)
        if objective.quality(initial) > objective.quality(metrics):
            metrics = {**initial, KEPT_PARENT_WEIGHTS: 1.0}
        else:
            model.set_weights(trained)
    metrics.update(evaluate(model, test_data, "test", schema))
    metrics["epochs"] = len(history.history["loss"])  # epochs trained, as the curve has them
    check_finite(metrics)
    save_trial_model(model, spec, transform_dir, schema, model_dir)
    num_params = model.count_params()
    if objective.measures_latency(config.objective):  # on the exported model: what serving it costs
        metrics["latency_ms"] = latency.measure(os.path.join(model_dir, SERVING_DIR), examples_dir, schema)
    metrics["objective"] = objective.value(metrics, task["type"], num_params, metrics.get("latency_ms"),
                                           config.objective)
    return metrics, num_params, inherited, recorder.stopped, recorder.cut


def _hint(spec: dict) -> str:
    knobs = spec.get("knobs", {})
    if "learning_rate" in knobs:
        return f" (learning rate {knobs['learning_rate']} with {knobs.get('optimizer', 'its optimizer')}: too high?)"
    return ""


def progress_line(trial: Trial, seconds: float) -> str:
    arch = ("+".join(b["name"] for b in trial.spec["blocks"]) or "linear") if "blocks" in trial.spec else trial.kind
    origin = f"from {trial.parent_id} by {trial.mutation}" if trial.parent_id is not None else "random"
    if trial.mutation.startswith("reevaluate:"):  # the same architecture again, another seed, from scratch
        origin = f"re-evaluation of {trial.mutation.split(':', 1)[1]}"
    if trial.kind != SEARCH:
        origin = f"{trial.kind} {origin}"
    if trial.teacher_id is not None:
        origin += (f" teacher={trial.teacher_id} ({trial.distillation.get('mode')} "
                   f"w={trial.distillation.get('weight', 0):.2f})")
    where = f"trial {trial.trial_id}" + (f" (#{trial.number})" if trial.number >= 0 else "")
    if trial.state not in EVIDENCE:
        last = trial.error.strip().splitlines()[-1] if trial.error.strip() else "unknown error"
        return f"[modelsearch] {where} {trial.state.upper()} ({arch}, {origin}): {last}"
    m = trial.metrics
    score = (f"val_accuracy={m['val_accuracy']:.4f} test_accuracy={m['test_accuracy']:.4f}"
             if "val_accuracy" in m else f"val_loss={m['val_loss']:.4g} test_loss={m['test_loss']:.4g}")
    depth = len(trial.spec.get("blocks", []))
    stopped = trial.state == STOPPED
    if "latency_ms" in m:
        score += f" latency={m['latency_ms']:.3g}ms"
    return (f"[modelsearch] {where}{' STOPPED' if stopped else ''}: {score} params={trial.num_params:,} "
            f"depth={depth} [{arch}] {origin} inherited={trial.num_inherited} ({seconds:.0f}s)"
            + (f"; {trial.error}" if trial.error else ""))  # why it stopped, or the time budget's note
