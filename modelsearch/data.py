"""The transformed examples as tf.data pipelines: streamed from Preprocess's TFRecords, never whole in memory.

Preprocess writes one float32 feature `x` of shape schema["input_shape"] and a `label` per example, as
gzipped TFRecords under `Split-<name>/` of the Examples artifact. Trainers, evaluation and the exploit
stages all read them through `dataset()`: shuffled (train), batched, parsed in parallel and prefetched.
A split small enough (SPLIT_CACHE_BYTES) is decompressed and parsed once and kept in memory as tensors,
which saves that work at every epoch and still bounds a trainer's memory whatever the data's size.
"""
from __future__ import annotations

import os

SHUFFLE_BUFFER = 10_000             # examples: a bounded buffer, so memory does not grow with the split
SPLIT_CACHE_BYTES = 64 * 1024 ** 2  # splits up to this size (parsed) stay in memory after the first pass
EVAL_BATCH = 256


def split_files(examples_dir: str, split: str) -> list[str]:
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(os.path.join(examples_dir, f"Split-{split}", "*.gz")))
    if not files:
        raise FileNotFoundError(f"no examples for split {split!r} under {examples_dir}")
    return files


def split_size(schema: dict, split: str) -> int | None:
    """Rows in the split, as Preprocess counted them (None for a schema written before it counted)."""
    return (schema.get("split_counts") or {}).get(split)


def dataset(examples_dir: str, split: str, schema: dict, batch_size: int = EVAL_BATCH, shuffle: bool = False,
            seed: int = 0):
    """(x, label) batches of one split. `shuffle`: a new order every epoch (seeded), for training."""
    import math

    import tensorflow as tf

    shape = list(schema["input_shape"])
    label_dtype = tf.float32 if schema["task"]["type"] == "regression" else tf.int64
    spec = {"x": tf.io.FixedLenFeature(shape, tf.float32), "label": tf.io.FixedLenFeature([], label_dtype)}
    records = tf.data.TFRecordDataset(split_files(examples_dir, split), compression_type="GZIP",
                                      num_parallel_reads=tf.data.AUTOTUNE)
    parse = lambda r: _pair(tf.io.parse_example(r, spec))  # noqa: E731
    rows = split_size(schema, split)
    if rows is not None and rows * 4 * (math.prod(shape) + 1) <= SPLIT_CACHE_BYTES:
        # Small enough: decompressed and parsed once, then every epoch reads the tensors from memory.
        examples = records.batch(1024).map(parse, num_parallel_calls=tf.data.AUTOTUNE).unbatch().cache()
        if shuffle:
            examples = examples.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
        batches = examples.batch(batch_size)
    else:
        if shuffle:
            records = records.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
        batches = records.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if rows is not None:  # Keras then knows an epoch's length (a TFRecord file's count is unknown to tf.data)
        batches = batches.apply(tf.data.experimental.assert_cardinality(math.ceil(rows / batch_size)))
    return batches.prefetch(tf.data.AUTOTUNE)


def _pair(parsed: dict):
    return parsed["x"], parsed["label"]


def with_teacher(data, teacher):
    """Targets packed for distillation: column 0 the label, then the teacher's outputs for the same batch
    (see modelsearch/distillation.py). The teacher runs inside the input pipeline, batch by batch."""
    import tensorflow as tf

    def pack(x, y):
        outputs = tf.reshape(tf.cast(teacher(x, training=False), tf.float32), [tf.shape(x)[0], -1])
        return x, tf.concat([tf.cast(y, tf.float32)[:, None], outputs], axis=1)

    return data.map(pack, num_parallel_calls=tf.data.AUTOTUNE)


def load_arrays(examples_dir: str, split: str, schema: dict):
    """A whole split as numpy (x, y): for tests, and for benchmarks that feed tools which take arrays.
    The search itself never loads a split whole (see dataset())."""
    import numpy as np

    xs, ys = zip(*dataset(examples_dir, split, schema, batch_size=4096).as_numpy_iterator())
    return np.concatenate(xs), np.concatenate(ys)
