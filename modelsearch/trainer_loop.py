"""The asynchronous trainer: take the study's next candidate, train it in a worker process, repeat to the budget.

K of these run at once (K TFX Trainer nodes; processes locally, pods on Kubeflow), sharing nothing but the
trial store and the artifact root. There is no round: a trainer that finishes a trial asks for the next
one at once (modelsearch/search.py decides it from every trial in the store at that moment).

Trials train in a worker process forked from the trainer loop, which recycles itself: Keras and TensorFlow
keep per-model state that a long-lived process accumulates, so a worker retires once its peak memory has
grown RECYCLE_GROWTH past what its first trial needed, and the next trial gets a fresh worker. Memory stays
flat however many trials a trainer runs, while a worker's one-off start (TensorFlow's runtime, the first
tracing and export: several seconds) is paid once for several trials. The loop process itself never runs
TensorFlow: it only talks to the trial store, which is what makes the fork safe. While a worker trains,
the loop renews the trial's lease; if the worker dies without recording a result (killed, out of memory)
the loop records why; if the whole trainer dies, its lease expires and the next trainer to ask reclaims
the trial (trialstore.reclaim_expired).

The search's time budget is a deadline in the trial store (open_search records it; every trainer reads the
same): past it a trainer starts no trial, and its worker ends the trial training after its current epoch.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import time

from common.process_exit import die_with_parent
from modelsearch.config import SearchConfig
from modelsearch.search import create_strategy, next_trial
from modelsearch.trialstore import LEASE_SECONDS, RUNNING, Trial, TrialStore


RECYCLE_GROWTH = 0.05  # a worker retires when its peak memory is 5% above its first trial's


def run_trainer(trial_store: dict | str, study: str, config: SearchConfig, budget: int, examples_dir: str,
                transform_dir: str, models_dir: str, seed: int = 0, threads: int = 0,
                lease_seconds: float = LEASE_SECONDS) -> list[Trial]:
    """Trains the study's next search trials until it holds `budget` or the search's time budget is spent (its
    deadline in the trial store); returns the trials this trainer ran.

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
    deadline = store.deadline(study)  # recorded before any trainer started: read once
    done, worker = [], None
    try:
        while True:
            if time_is_up(deadline):
                print(f"[modelsearch] the search's time budget is spent: this trainer starts no more trials "
                      f"({len(done)} trained)", file=sys.stderr, flush=True)
                break
            trial = next_trial(store, study, config, space, budget, seed, lease_seconds, strategy)
            if trial is None:
                break
            if worker is None or worker.retiring or not worker.alive:
                if worker is not None:
                    worker.close()
                worker = TrialWorker(trial_store, examples_dir, transform_dir, config, threads, deadline)
            done.append(worker.train(store, trial, os.path.join(models_dir, f"trial_{trial.trial_id}"),
                                     lease_seconds))
    finally:
        if worker is not None:
            worker.close()
    return done


def time_is_up(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


class TrialWorker:
    """A process forked from the trainer loop that trains the trials it is handed, one at a time."""

    def __init__(self, trial_store, examples_dir: str, transform_dir: str, config: SearchConfig, threads: int,
                 deadline: float | None = None):
        context = multiprocessing.get_context("fork")
        self.connection, child_end = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child_end, trial_store, examples_dir, transform_dir, config, threads, deadline),
            name="trial-worker")
        self.process.start()
        child_end.close()
        self.first_peak = self.peak = 0.0

    @property
    def alive(self) -> bool:
        return self.process.exitcode is None

    @property
    def retiring(self) -> bool:
        return self.peak > self.first_peak * (1 + RECYCLE_GROWTH)

    def train(self, store: TrialStore, trial: Trial, model_dir: str, lease_seconds: float) -> Trial:
        """Has the worker train `trial` (it records the result) while renewing the trial's lease; records the
        trial as failed if the worker ended without recording anything."""
        try:
            self.connection.send((trial.trial_id, model_dir))
        except OSError:  # the worker died before it got the trial: recorded as failed below
            self.process.join()
        peak = None
        while peak is None and self.alive:
            if not self.connection.poll(lease_seconds / 4):
                store.heartbeat(trial.trial_id, lease_seconds)
                continue
            try:
                peak = self.connection.recv()
            except EOFError:  # the worker died: its exit code says how
                self.process.join()
        if peak is not None:
            self.first_peak, self.peak = self.first_peak or peak, peak
        result = store.get(trial.trial_id)
        if result.state == RUNNING:
            self.process.join(timeout=5)
            store.fail_trial(trial.trial_id, f"the trial's process {ended(self.process.exitcode)} before "
                                             "recording a result")
            result = store.get(trial.trial_id)
            print(f"[modelsearch] trial {trial.trial_id} FAILED: {result.error}", file=sys.stderr, flush=True)
        return result

    def close(self) -> None:
        if self.alive:
            try:
                self.connection.send(None)
            except OSError:  # it died meanwhile
                pass
        self.process.join()


def ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        return f"was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"exited with code {exitcode}"


def _serve(connection, trial_store, examples_dir: str, transform_dir: str, config: SearchConfig,
           threads: int, deadline: float | None = None) -> None:
    """The worker process: a trial-store connection of its own (none is shared across a fork), then the
    trials it is handed, answering each with its peak memory, until it is told to stop. A trial training at
    the `deadline` ends after its current epoch."""
    die_with_parent()
    import keras
    import tensorflow as tf

    from modelsearch.training import peak_rss_mb, run_trial

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    store = TrialStore(trial_store)
    try:
        while (job := connection.recv()) is not None:
            trial_id, model_dir = job
            run_trial(store.get(trial_id), examples_dir, transform_dir, store, config, model_dir,
                      deadline=deadline)
            keras.backend.clear_session()  # a fresh process's layer names and graph for the next trial
            gc.collect()
            sys.stderr.flush()
            connection.send(peak_rss_mb())
    except KeyboardInterrupt:  # Ctrl-C: run_trial recorded the trial as interrupted; end without a traceback
        sys.stderr.flush()
        os._exit(130)
