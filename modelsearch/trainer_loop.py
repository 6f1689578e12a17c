"""The asynchronous trainer: take the study's next candidate, train it in a fresh process, repeat to the budget.

K of these run at once (K TFX Trainer nodes; processes locally, pods on Kubeflow), sharing nothing but the
trial store and the artifact root. There is no round: a trainer that finishes a trial asks for the next
one at once (modelsearch/search.py decides it from every trial in the store at that moment).

Each trial trains in a child process forked for it, so a trainer's memory does not grow with the number
of trials it has run (Keras and TensorFlow keep per-model state that a long-lived process accumulates).
The loop process itself never runs TensorFlow: it only talks to the trial store, which is what makes the
fork safe. While the child trains, the loop renews the trial's lease; if the child dies without recording
a result (killed, out of memory) the loop records why; if the whole trainer dies, its lease expires and
the next trainer to ask reclaims the trial (trialstore.reclaim_expired).
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys

from modelsearch.config import SearchConfig
from modelsearch.search import create_strategy, next_trial
from modelsearch.trialstore import LEASE_SECONDS, RUNNING, Trial, TrialStore


def run_trainer(trial_store: dict | str, study: str, config: SearchConfig, budget: int, examples_dir: str,
                transform_dir: str, models_dir: str, seed: int = 0, threads: int = 0,
                lease_seconds: float = LEASE_SECONDS) -> list[Trial]:
    """Trains the study's next search trials until it holds `budget`; returns the trials this trainer ran.

    `threads`: TensorFlow threads per trial (0: TensorFlow's default, every core); with K trainers on one
    machine each gets its share of the cores."""
    from modelsearch.export import read_schema
    from modelsearch.space import SearchSpace

    store = TrialStore(trial_store)
    space = SearchSpace(config, read_schema(transform_dir)["input_shape"])
    strategy = create_strategy(config)
    # TensorFlow's and Keras's imports leave about a million objects that every garbage collection would scan
    # again: out of the collector's sight they cannot pause a proposal (BENCHMARKS.md, "Proposal cost").
    gc.freeze()
    done = []
    while (trial := next_trial(store, study, config, space, budget, seed, lease_seconds, strategy)) is not None:
        model_dir = os.path.join(models_dir, f"trial_{trial.trial_id}")
        done.append(run_isolated(store, trial, lambda: _train_child(
            trial_store, trial, examples_dir, transform_dir, config, model_dir, threads), lease_seconds))
    return done


def run_isolated(store: TrialStore, trial: Trial, work, lease_seconds: float = LEASE_SECONDS) -> Trial:
    """Runs `work` (which records the trial's result) in a forked child while renewing the trial's lease;
    records the trial as failed if the child ended without recording anything."""
    child = multiprocessing.get_context("fork").Process(target=work, name=f"trial-{trial.trial_id}")
    child.start()
    while child.exitcode is None:
        child.join(timeout=lease_seconds / 4)
        if child.exitcode is None:
            store.heartbeat(trial.trial_id, lease_seconds)
    result = store.get(trial.trial_id)
    if result.state == RUNNING:
        store.fail_trial(trial.trial_id, f"the trial's process {ended(child.exitcode)} before recording a result")
        result = store.get(trial.trial_id)
        print(f"[modelsearch] trial {trial.trial_id} FAILED: {result.error}", file=sys.stderr, flush=True)
    return result


def ended(exitcode: int) -> str:
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        return f"was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"exited with code {exitcode}"


def _train_child(trial_store, trial: Trial, examples_dir: str, transform_dir: str, config: SearchConfig,
                 model_dir: str, threads: int) -> None:
    """The trial's own process: a fresh trial-store connection (none is shared across a fork), then train."""
    _die_with_parent()
    import tensorflow as tf

    from modelsearch.training import run_trial

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    run_trial(trial, examples_dir, transform_dir, TrialStore(trial_store), config, model_dir)
    sys.stderr.flush()


def _die_with_parent() -> None:
    """A trial does not outlive its trainer (Linux): a killed trainer's trial is reclaimed by its lease, and
    must not also finish behind the back of the trainer that trains it again."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
