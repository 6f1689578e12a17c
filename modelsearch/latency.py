"""A served model's latency: its exported SavedModel called on one raw example (batch 1), on this machine.

What a user's request costs: the signature runs the transform graph and the model, on raw features, as TF
Serving would. Measured in the process that trained the trial (the trainer's share of the cores), so
latencies of one study compare with each other, not with another machine's.
"""
from __future__ import annotations

import statistics
import time

WARMUP_CALLS = 3   # the first calls trace and allocate: not what a request costs
TIMED_CALLS = 20   # the median of these: robust to a call that another process's burst slowed down


def one_raw_example(examples_dir: str, schema: dict) -> dict:
    """The first raw validation row as serving inputs {name: array of batch 1} (raw_examples.raw_batches)."""
    from modelsearch.raw_examples import raw_batches

    inputs, _ = next(raw_batches(examples_dir, schema, "validation", batch_size=1))
    return inputs


def serving_latency_ms(saved_model_dir: str, inputs: dict, warmup: int = WARMUP_CALLS,
                       calls: int = TIMED_CALLS) -> float:
    """The median milliseconds of `calls` calls of the SavedModel's serving_default on `inputs`, after
    `warmup` calls; each call's outputs are read back (numpy), so the time includes the whole computation."""
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model_dir)  # held: the signature needs its variables alive
    signature = loaded.signatures["serving_default"]
    tensors = {name: tf.constant(value) for name, value in inputs.items()}

    def call():
        for output in signature(**tensors).values():
            output.numpy()

    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def measure(saved_model_dir: str, examples_dir: str, schema: dict) -> float:
    """The serving latency in ms of a trial's exported model on one raw validation row."""
    return serving_latency_ms(saved_model_dir, one_raw_example(examples_dir, schema))
