"""Input route: TFRecord files of tf.Examples (a file named *.tfrecord[s][.gz], or a folder of them).

In the pipeline TFX's ImportExampleGen imports them (one split, `all`); Preprocess splits them itself, as
it does every route. What the features are decides the input:

- one bytes feature holding encoded PNG / JPEG images  -> an image input (decoded in the transform);
- one fixed-length float / int list                   -> an array of the declared shape (`--input-shape`;
  without one: a feature vector, or a sequence / square image with `--input-kind`);
- otherwise scalar features                           -> a table, exactly like CSV columns.
Other features beside an image or a list are ignored (listed in schema["ignored_features"]).
"""
from __future__ import annotations

import os

from common.errors import UserError, first_line
from components.preprocess import shaped_table
from components.preprocess.images import image_column, image_info, image_shape
from components.preprocess.values import (cell_value, infer_task, label_value, serving_names,
                                          table_columns, table_width)
from modelsearch.kinds import kind_of_shape, model_shape, shape_text, size, square_shape

FORMAT = "tfrecord"
DEFAULT_LABEL = None      # --label is required
LABEL_NOUN = "feature"
SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".tfr")
IMPORT_PATTERN = "*.tfr*"  # ImportExampleGen's pattern for a folder: the files data_files() lists
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
MIN_EXAMPLES = 10


def is_tfrecords(path: str) -> bool:
    """A TFRecord file by its name, or a folder (local or gs://) holding such files."""
    path = path.rstrip("/")
    if path.lower().endswith(SUFFIXES):
        return True
    import tensorflow as tf

    return tf.io.gfile.isdir(path) and any(n.lower().endswith(SUFFIXES) for n in tf.io.gfile.listdir(path))


detect = is_tfrecords  # the route interface's name; pipelines use is_tfrecords to pick ImportExampleGen


def data_files(path: str) -> list[str]:
    import tensorflow as tf

    path = path.rstrip("/")
    if path.lower().endswith(SUFFIXES):
        if not tf.io.gfile.exists(path):
            raise UserError(f"data file {path} does not exist; pass the path of a TFRecord file or folder")
        return [path]
    return sorted(os.path.join(path, n) for n in tf.io.gfile.listdir(path)
                  if n.lower().endswith(SUFFIXES) and not n.startswith("."))


def import_location(path: str) -> tuple[str, str]:
    """(input_base, file pattern) for ImportExampleGen: the same files data_files() reads. Only the path's
    text is split (os.path on a gs:// URI splits at its slashes); ImportExampleGen reads through gfile."""
    path = path.rstrip("/")
    if path.lower().endswith(SUFFIXES):
        return os.path.dirname(path) or ".", os.path.basename(path)
    return path, IMPORT_PATTERN


def read_records(files: list[str]) -> list[bytes]:
    import tensorflow as tf

    records = []
    for name in files:
        compression = "GZIP" if name.lower().endswith(".gz") else ""
        try:
            records += [r.numpy() for r in tf.data.TFRecordDataset(name, compression_type=compression)]
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            raise UserError(f"{name} cannot be read as TFRecords ({first_line(e)}); pass TFRecord "
                            f"files of tf.Examples (gzipped ones named *.gz)") from None
    return records


def decode(records: list[bytes], where: str):
    """Serialized tf.Examples -> an Arrow record batch (one list column per feature; null where absent)."""
    from tfx_bsl.coders import example_coder

    try:
        return example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records)
    except RuntimeError as e:
        raise UserError(f"{where} holds records that are not tf.Examples ({first_line(e)}); pass TFRecords of "
                        f"tf.train.Example") from None


def _features(batch) -> dict:
    """name -> (type: float | int | bytes, per-example value lists, None where absent)."""
    import pyarrow as pa

    features = {}
    for name, column in zip(batch.schema.names, batch.columns):
        value_type = column.type.value_type
        kind = ("float" if pa.types.is_floating(value_type) else "int" if pa.types.is_integer(value_type)
                else "bytes")
        features[name] = (kind, column.to_pylist())
    return features


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip()
    return repr(value) if isinstance(value, float) else str(value)


def infer_schema(path: str, label: str, problem_type: str | None, kind: str | None,
                 declared: list[int] | None) -> dict:
    """One image feature, one numeric list feature, or scalar features as a table (see the module docstring)."""
    files = data_files(path)
    if not files:
        raise UserError(f"{path} holds no TFRecord files ({', '.join(SUFFIXES)}); pass a file or a folder of them")
    records = read_records(files)
    if len(records) < MIN_EXAMPLES:
        raise UserError(f"{path} has only {len(records)} examples, too few to split into train, validation and "
                        f"test; add examples (at least {MIN_EXAMPLES}, better hundreds)")
    features = _features(decode(records, path))
    if label not in features:
        raise UserError(f"label feature {label!r} is not in the examples of {path}; their features are: "
                        f"{', '.join(sorted(features))}")
    _, label_values = features.pop(label)
    if any(v is not None and len(v) > 1 for v in label_values):
        raise UserError(f"label feature {label!r} holds several values in an example; it must hold one")
    task = infer_task([_first(v) for v in label_values], label, problem_type)
    schema = {"format": FORMAT, "label": label, "task": task, "num_examples": len(records)}
    if not features:
        raise UserError(f"the examples of {path} have no features besides the label {label!r}; add at least one")

    images = [n for n, (t, values) in features.items() if t == "bytes" and _holds_images(values)]
    lists = [n for n, (t, values) in features.items() if t != "bytes" and any(v and len(v) > 1 for v in values)]
    wide = images or lists
    if len(wide) > 1:
        raise UserError(f"the examples of {path} hold several {'image' if images else 'list'} features "
                        f"({', '.join(wide)}); Model Search takes one image or one list feature (plus scalar "
                        f"features as a table): write examples with the one you want")
    if images:
        [name] = images
        if kind not in (None, "image"):
            raise UserError(f"feature {name!r} holds encoded images, so the input kind is image, not {kind}")
        infos = []
        for i, value in enumerate(features[name][1]):
            where = f"feature {name!r} of example {i} in {path}"
            if not value or len(value) != 1:
                raise UserError(f"{where} holds {len(value or [])} images; every example needs exactly one")
            infos.append((*image_info(value[0], where), where))
        shape = image_shape(infos, declared, path)
        column = {**image_column(label, shape, name), "serving_name": serving_names([name])[0]}
        return {**schema, "columns": [column], "input_shape": shape, "ignored_features": _others(features, name)}
    if lists:
        [name] = lists
        return {**schema, **_list_input(name, features[name][1], kind, declared, path),
                "ignored_features": _others(features, name)}
    texts = {}
    for name, (_, values) in features.items():
        if any(v is not None and len(v) > 1 for v in values):
            raise UserError(f"feature {name!r} of {path} holds several values in an example")
        texts[name] = [_first(v) for v in values]
    columns = table_columns(texts)
    table = {**schema, "columns": columns, "input_shape": [table_width(columns)]}
    return shaped_table.shape_schema(table, kind, declared, path)


def _holds_images(values: list) -> bool:
    first = next((v[0] for v in values if v), b"")
    return first.startswith(IMAGE_MAGIC)


def _others(features: dict, name: str) -> list[str]:
    return sorted(n for n in features if n != name)


def _list_input(name: str, values: list, kind: str | None, declared: list[int] | None, path: str) -> dict:
    """The columns and input shape for one fixed-length numeric list feature."""
    lengths = {len(v) if v else 0 for v in values}
    if len(lengths) > 1:
        raise UserError(f"feature {name!r} of {path} has lists of different lengths ({', '.join(map(str, sorted(lengths)))} "
                        f"values); every example needs the same number of values (pad them)")
    [length] = lengths
    if declared is None:
        declared = [length] if kind != "image" else square_shape(length, f"feature {name!r} holds {length} values")
        kind = kind or "tabular"
    kind = kind or kind_of_shape(declared)
    if size(declared) != length:
        raise UserError(f"--input-shape {shape_text(declared)} needs {size(declared)} values, but feature "
                        f"{name!r} of {path} holds {length}; give a shape whose sizes multiply to {length}")
    column = {"name": name, "kind": "array", "shape": declared, "serving_name": serving_names([name])[0]}
    return {"columns": [column], "input_shape": model_shape(kind, declared)}


def example_parser(schema: dict):
    """A function from one serialized tf.Example to its raw row (the same values infer_schema read)."""
    label = schema["label"]
    decoder = []

    def parse(record: bytes) -> dict:
        if not decoder:
            from tfx_bsl.coders import example_coder
            decoder.append(example_coder.ExamplesToRecordBatchDecoder())
        batch = decoder[0].DecodeBatch([record])
        values = {n: c[0].as_py() for n, c in zip(batch.schema.names, batch.columns)}
        row = {}
        for column in schema["columns"]:
            name = column["name"]
            if column["kind"] == "image":
                row[name] = values[name][0]
            elif column["kind"] == "array" and "source_columns" not in column:
                row[name] = [float(v) for v in values[name]]
            elif column["kind"] == "array":  # scalar features forming a shape
                row[name] = [cell_value({"kind": "numeric", "fill": fill}, _first(values.get(source)))
                             for source, fill in zip(column["source_columns"], column["fills"])]
            else:
                row[name] = cell_value(column, _first(values.get(name)))
        row[label] = label_value(schema, _first(values.get(label)))
        return row

    return parse


def _first(value) -> str:
    return "" if not value else _text(value[0])


def source(pipeline, schema: dict, data_path: str, example_files: list[str] | None):
    """(PCollection of serialized tf.Examples, record -> raw row). example_files: ImportExampleGen's copy of
    the data, read instead of data_path's files when given."""
    import apache_beam as beam

    files = example_files or data_files(data_path)
    return (pipeline | "Files" >> beam.Create(files) | "Read" >> beam.io.ReadAllFromTFRecord(),
            example_parser(schema))
