"""Preprocess's work: a Beam + tensorflow-transform pipeline from the data to split, transformed tf.Examples.

Keys of the input route (CSV lines, image paths, tf.Examples: see routes.py) -> deterministic split by a
seeded hash of the key -> raw dicts (the route's parse; fills for missing values; a row the route drops, such
as a CSV row without a label, is left out)
-> tft analysis on train, the same transform applied to every split -> one float32 feature `x` of
shape schema["input_shape"] and a `label` (int64 class index, or float32 z-scored by the train split: its
mean and deviation go to the schema's "label_scale", see modelsearch/label_units.py) per example, written as
gzipped TFRecords in TFX's Examples layout (`Split-<name>/data-*.tfrecord.gz`); the transform graph
goes to transform_dir, which serving uses to take raw features. The raw validation and test rows go to
`Raw-validation/` and `Raw-test/` (see raw_examples.py): served models are judged on them.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
import zlib

from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from common.errors import UserError
from components.preprocess.routes import route_for_schema
from components.preprocess.schema import infer_schema
from modelsearch import data_versions
from modelsearch.export import SCHEMA_FILE
from modelsearch.label_units import scale_from_moments
from modelsearch.raw_examples import RAW_DIR, encode_raw

SPLITS = (("train", 70), ("validation", 15), ("test", 15))
# The in-process portable runner: offline (Beam 2.77's DirectRunner may hand the job to Prism, which
# downloads a binary), deterministic, and no worker processes to start.
DEFAULT_BEAM_ARGS = ("--runner=FnApiRunner",)
LABEL_SCALE_FILE = "label_scale.json"  # in tf.Transform's temp folder: Beam writes it, the schema takes it


def _split_index(key: str | bytes, seed: int, splits) -> int:
    """The split of a row by a seeded hash of its key (a CSV line, an image's path, a serialized tf.Example)."""
    key = key if isinstance(key, bytes) else key.encode("utf-8")
    bucket = zlib.crc32(f"{seed}\x00".encode("utf-8") + key) % sum(p for _, p in splits)
    for i, (_, percent) in enumerate(splits):
        if bucket < percent:
            return i
        bucket -= percent
    return len(splits) - 1


def _parsed(key, parse):
    """The key's raw row, or none for a key the route drops (parse returns None: e.g. a CSV row whose label
    is missing, which schema inference counted in its notes)."""
    row = parse(key)
    if row is not None:
        yield row


def _preprocessing_fn(schema: dict):
    import tensorflow as tf

    task = schema["task"]

    def preprocessing_fn(inputs):
        outputs = {"x": _images(inputs, schema) if schema["columns"][0]["kind"] == "image"
                   else _array(inputs, schema) if schema["columns"][0]["kind"] == "array"
                   else _table(inputs, schema)}
        y = inputs[schema["label"]]
        if task["type"] == "classification":
            # Class index by comparison with the (few) class names: no lookup table to re-initialise per batch.
            # Every label is one of the classes (they were read from the same file).
            matches = tf.equal(y[:, None], tf.constant(task["classes"])[None, :])
            outputs["label"] = tf.where(tf.reduce_any(matches, axis=1),
                                        tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int64),
                                        tf.constant(-1, tf.int64))
        else:
            outputs["label"] = _scaled_label(tf.cast(y, tf.float32))
        return outputs

    return preprocessing_fn


def _scaled_label(y):
    """A regression label z-scored by the train split's mean and deviation (modelsearch/label_units.py: the
    served model undoes it with the same numbers, which run_preprocess computes beside, in float64)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from modelsearch.label_units import FLAT

    mean, std = tft.mean(y), tf.sqrt(tft.var(y))
    flat = tf.logical_not(std > FLAT * tf.maximum(tf.abs(mean), 1.0))  # label_units.deviation's rule (NaN: flat)
    return (y - mean) / tf.where(flat, tf.ones_like(std), std)


def _merge_moments(parts) -> tuple[int, float, float]:
    """(count, mean, sum of squared deviations) of labels, from those of parts (a label alone: (1, y, 0)), by
    Chan's rule: no cancellation for labels far from zero (a sum of squares minus a squared sum would have).
    Associative, as Beam's CombineGlobally needs; no parts: (0, 0, 0)."""
    n, mean, m2 = 0, 0.0, 0.0
    for nb, mb, m2b in parts:
        if nb:
            total = n + nb
            delta = mb - mean
            n, mean, m2 = total, mean + delta * nb / total, m2 + m2b + delta * delta * n * nb / total
    return n, mean, m2


def _table(inputs: dict, schema: dict):
    """Table columns -> one feature vector: z-scored numbers and one-hot strings, in schema column order."""
    import tensorflow as tf
    import tensorflow_transform as tft

    # Numeric columns are scaled together (one elementwise analyzer, not one per column: the graph,
    # and so TFT's tracing time, stays small). Zero variance gives x - mean, i.e. 0.
    numeric = [c["name"] for c in schema["columns"] if c["kind"] == "numeric"]
    scaled = {}
    if numeric:
        z = _finite(tft.scale_to_z_score(tf.stack([inputs[name] for name in numeric], axis=1), elementwise=True))
        scaled = {name: z[:, j:j + 1] for j, name in enumerate(numeric)}
    parts = []
    for i, column in enumerate(schema["columns"]):
        if column["kind"] == "numeric":
            parts.append(scaled[column["name"]])
        else:
            index = tft.compute_and_apply_vocabulary(inputs[column["name"]], top_k=column["vocab_size"],
                                                     num_oov_buckets=1, vocab_filename=f"vocab_column_{i}")
            parts.append(tf.one_hot(index, depth=column["vocab_size"] + 1, dtype=tf.float32))
    return tf.concat(parts, axis=1)


def _array(inputs: dict, schema: dict):
    """Raw values of the declared shape -> the model's input shape. A feature vector is scaled per feature;
    pixels and sequences by one mean and deviation over all values (neighbouring values stay comparable)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    [column] = schema["columns"]
    x = tf.cast(inputs[column["name"]], tf.float32)
    x = tf.reshape(x, [-1, *schema["input_shape"]])
    return _finite(tft.scale_to_z_score(x, elementwise=schema.get("kind") == "tabular"))


def _images(inputs: dict, schema: dict):
    """Encoded PNG / JPEG bytes -> decoded (tf.io.decode_image, to the schema's channels), resized to the
    schema's size (bilinear; an image of that size is unchanged), then scaled by the training pixels' mean
    and deviation. Inside the transform graph, so the served model decodes exactly as training did."""
    import tensorflow as tf
    import tensorflow_transform as tft

    [column] = schema["columns"]
    height, width, channels = schema["input_shape"]

    def decode(data):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False, dtype=tf.uint8)
        return tf.image.resize(image, [height, width])

    images = tf.map_fn(decode, tf.reshape(inputs[column["name"]], [-1]),
                       fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32))
    return _finite(tft.scale_to_z_score(images))


def _finite(z):
    import tensorflow as tf

    return tf.where(tf.math.is_finite(z), z, tf.zeros_like(z))


def _tensor_adapter_config(schema: dict):
    """How TFT reads our raw Arrow record batches: one dense tensor per raw column (a scalar per row, or the
    declared shape of an array column)."""
    import pyarrow as pa
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx_bsl.public import tfxio

    from modelsearch.raw_examples import raw_spec

    shapes = {c["name"]: raw_spec(c)[0] for c in schema["columns"]}
    types = _arrow_types(schema)
    representations = {
        name: schema_pb2.TensorRepresentation(dense_tensor=schema_pb2.TensorRepresentation.DenseTensor(
            column_name=name, shape=schema_pb2.FixedShape(
                dim=[schema_pb2.FixedShape.Dim(size=d) for d in shapes.get(name, [])])))
        for name, _ in types}
    return tfxio.TensorAdapterConfig(pa.schema([pa.field(name, pa.large_list(t)) for name, t in types]),
                                     representations)


def _arrow_types(schema: dict) -> list:
    import pyarrow as pa

    types = [(c["name"], pa.float32() if c["kind"] in ("numeric", "array") else pa.large_binary())
             for c in schema["columns"]]
    regression = schema["task"]["type"] == "regression"
    return [*types, (schema["label"], pa.float32() if regression else pa.large_binary())]


def _to_record_batch(rows: list, arrow_types: list):
    """Raw rows (dicts) as an Arrow record batch, the format TFT reads without re-encoding to tf.Example.
    A list value (an array column) is the row's flat list of values; anything else one value."""
    import pyarrow as pa

    arrays = [pa.array([row[name] if isinstance(row[name], list) else [row[name]] for row in rows],
                       type=pa.large_list(arrow_type))
              for name, arrow_type in arrow_types]
    return pa.RecordBatch.from_arrays(arrays, [name for name, _ in arrow_types])


class _EncodeExamples:
    """Transformed record batches -> serialized tf.Examples (tfx_bsl's C++ encoder) and a row counter."""

    def __init__(self, split: str):
        import apache_beam as beam

        self._counter = beam.metrics.Metrics.counter("preprocess", f"rows_{split}")
        self._encoder = None

    def __call__(self, batch_and_passthrough):
        from tfx_bsl.public import tfxio

        if self._encoder is None:
            self._encoder = tfxio.RecordBatchToExamplesEncoder()
        batch = batch_and_passthrough[0]
        self._counter.inc(batch.num_rows)
        return self._encoder.encode(batch)


@contextlib.contextmanager
def _transform_temp_dir(transform_dir: str):
    """tf.Transform's temp folder, inside the transform graph's artifact (under the pipeline root), not on this
    machine: a distributed runner's workers (Dataflow, Flink, Spark) write and read it too. Removed after."""
    from tfx.dsl.io import fileio

    path = os.path.join(transform_dir, f".tft-temp-{uuid.uuid4().hex[:8]}")
    try:
        yield path
    finally:
        if fileio.exists(path):
            fileio.rmtree(path)


def _read_json(path: str):
    import tensorflow as tf

    with tf.io.gfile.GFile(path) as f:
        return json.loads(f.read())


def names_runner(beam_pipeline_args: list | None) -> bool:
    return any(a == "--runner" or a.startswith("--runner=") for a in beam_pipeline_args or [])


def pipeline_args(beam_pipeline_args: list | None) -> list:
    """The caller's Beam arguments, with the offline default runner unless they name one."""
    args = list(beam_pipeline_args or [])
    return args if names_runner(args) else [*DEFAULT_BEAM_ARGS, *args]


def run_preprocess(data_path: str, schema: dict, examples_dir: str, transform_dir: str, seed: int = 0,
                   splits=SPLITS, beam_pipeline_args: list | None = None,
                   example_files: list[str] | None = None) -> None:
    """Runs the Beam pipeline: split, analyse on train, transform every split, write examples and transform.

    `example_files`: for TFRecords, the files to read (ImportExampleGen's output) instead of data_path's."""
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions

    import time

    splits = tuple((str(name), int(percent)) for name, percent in splits)
    started = time.time()
    print(f"[modelsearch] preprocessing {data_path}: splitting it "
          f"{'/'.join(str(p) for _, p in splits)} ({', '.join(n for n, _ in splits)}), analysing the train split "
          "with tf.Transform, writing every split transformed ...", file=sys.stderr, flush=True)
    adapter_config, arrow_types = _tensor_adapter_config(schema), _arrow_types(schema)
    with _transform_temp_dir(transform_dir) as temp_dir:
        pipeline = beam.Pipeline(options=PipelineOptions(pipeline_args(beam_pipeline_args)))
        with tft_beam.Context(temp_dir=temp_dir, force_tf_compat_v1=False):
            keys, parse = route_for_schema(schema).source(pipeline, schema, data_path, example_files)
            parts = keys | "Split" >> beam.Partition(lambda key, n: _split_index(key, seed, splits), len(splits))
            rows = {name: parts[i] | f"Parse[{name}]" >> beam.FlatMap(_parsed, parse)
                    for i, (name, _) in enumerate(splits)}
            raw = {name: (rows[name]
                          | f"Batch[{name}]" >> beam.BatchElements(min_batch_size=1, max_batch_size=1000)
                          | f"ToArrow[{name}]" >> beam.Map(_to_record_batch, arrow_types))
                   for name, _ in splits}
            # The raw held-out rows, to judge served models (a pushed one included) on this run's rows: the push
            # decision on validation, the test scores reported.
            for name, _percent in splits[1:]:
                _ = (rows[name]
                     | f"EncodeRaw[{name}]" >> beam.Map(encode_raw, schema)
                     | f"WriteRaw[{name}]" >> beam.io.WriteToTFRecord(
                         os.path.join(examples_dir, RAW_DIR.format(split=name), "data"),
                         file_name_suffix=".tfrecord.gz", compression_type=CompressionTypes.GZIP))
            train_name = splits[0][0]
            (transformed_train, _), transform_fn = (
                (raw[train_name], adapter_config) | "Analyze" >> tft_beam.AnalyzeAndTransformDataset(
                    _preprocessing_fn(schema), output_record_batches=True))
            _ = transform_fn | "WriteTransform" >> tft_beam.WriteTransformFn(transform_dir)
            if schema["task"]["type"] == "regression":  # the label's scale, for serving and the trial store
                label = schema["label"]
                _ = (rows[train_name]
                     | "Label" >> beam.Map(lambda row: (1, float(row[label]), 0.0))
                     | "LabelMoments" >> beam.CombineGlobally(_merge_moments)
                     | "LabelScale" >> beam.Map(lambda m: json.dumps(scale_from_moments(m[0], m[1],
                                                                                        m[2] / max(m[0], 1))))
                     | "WriteLabelScale" >> beam.io.WriteToText(os.path.join(temp_dir, LABEL_SCALE_FILE),
                                                                shard_name_template=""))
            for name, _percent in splits:
                if name == train_name:
                    transformed = transformed_train
                else:
                    transformed, _ = ((raw[name], adapter_config), transform_fn) | f"Transform[{name}]" >> (
                        tft_beam.TransformDataset(output_record_batches=True))
                _ = (transformed
                     | f"Encode[{name}]" >> beam.FlatMap(_EncodeExamples(name))
                     | f"Write[{name}]" >> beam.io.WriteToTFRecord(
                         os.path.join(examples_dir, f"Split-{name}", "data"), file_name_suffix=".tfrecord.gz",
                         compression_type=CompressionTypes.GZIP))
            result = pipeline.run()
            result.wait_until_finish()
            if schema["task"]["type"] == "regression":
                schema = {**schema, "label_scale": _read_json(os.path.join(temp_dir, LABEL_SCALE_FILE))}
    counts = {name: 0 for name, _ in splits}
    for entry in result.metrics().query(MetricsFilter().with_namespace("preprocess"))["counters"]:
        name = entry.key.metric.name.removeprefix("rows_")
        counts[name] = int(entry.committed if entry.committed is not None else entry.attempted)
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise UserError(f"split {', '.join(empty)} of {data_path} got no rows ({sum(counts.values())} rows in "
                        f"all); add rows so that every split gets some (hundreds are better)")
    print(f"[modelsearch] preprocessed {sum(counts.values()):,} rows ("
          + ", ".join(f"{name} {count:,}" for name, count in counts.items())
          + f") in {time.time() - started:.0f} s", file=sys.stderr, flush=True)
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(transform_dir, SCHEMA_FILE), "w") as f:  # the artifact may be on gs://
        json.dump({**schema, "split_counts": counts}, f, indent=1)


class Executor(base_beam_executor.BaseBeamExecutor):
    """Infers the schema, runs the Beam pipeline, fills the Examples and TransformGraph artifacts."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        import tensorflow as tf

        self._log_startup(input_dict, output_dict, exec_properties)
        data_path = exec_properties["data_path"]
        schema = infer_schema(data_path, exec_properties["label"], exec_properties.get("problem_type") or None,
                              exec_properties.get("input_kind") or None, exec_properties.get("input_shape") or None)
        # The data version's key (modelsearch/data_versions.py): the local runner computed it already.
        schema["data_fingerprint"] = exec_properties.get("data_fingerprint") or data_versions.fingerprint(data_path)
        example_files = None
        if input_dict.get("examples"):  # TFRecords imported by ImportExampleGen: read its copy, every split
            uri = artifact_utils.get_single_uri(input_dict["examples"])
            example_files = sorted(tf.io.gfile.glob(os.path.join(uri, "Split-*", "*")))
        examples = artifact_utils.get_single_instance(output_dict["transformed_examples"])
        transform_graph = artifact_utils.get_single_instance(output_dict["transform_graph"])
        run_preprocess(data_path, schema, examples.uri, transform_graph.uri,
                       seed=int(exec_properties.get("seed") or 0), splits=SPLITS,
                       beam_pipeline_args=self._beam_pipeline_args or None, example_files=example_files)
        examples.split_names = artifact_utils.encode_split_names([name for name, _ in SPLITS])
