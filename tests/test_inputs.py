"""Input routes besides CSV tables: image folders, TFRecords of tf.Examples, tables whose columns form a
shape. Schema inference and its user errors; then Preprocess on each route and serving parity: the served
model on RAW inputs (encoded bytes, raw pixels, a raw sequence) agrees with the Keras model on the
transformed ones."""
import io
import os

import numpy as np
import pytest

from components.preprocess.schema import detect_format, infer_schema
from modelsearch.errors import UserError
from tests.input_data import encode, pattern, write_image_folder, write_pixel_csv, write_sequence_csv, write_tfrecords


def _fail(match, *args):
    with pytest.raises(UserError, match=match):
        infer_schema(*args)


# ---- schema inference -----------------------------------------------------------------------------------

def test_image_folder_schema(tmp_path):
    root = write_image_folder(tmp_path / "images", per_class=5, jpeg_every=2)
    assert detect_format(root) == "image_folder"
    schema = infer_schema(root, None)
    assert schema["format"] == "image_folder" and schema["kind"] == "image" and schema["label"] == "label"
    assert schema["input_shape"] == [6, 6, 1] and schema["num_images"] == 15
    assert schema["task"] == {"type": "classification", "num_classes": 3, "classes": ["a", "b", "c"]}
    assert schema["columns"] == [{"name": "image", "kind": "image", "serving_name": "image", "size": [6, 6],
                                  "channels": 1}]
    resized = infer_schema(root, "animal", None, "image", "10,12,3")
    assert resized["input_shape"] == [10, 12, 3] and resized["label"] == "animal"
    assert infer_schema(root, None, None, None, "4,4")["input_shape"] == [4, 4, 1]


def test_image_folder_color_and_ignored_files(tmp_path):
    root = write_image_folder(tmp_path / "images", per_class=5)
    from PIL import Image

    Image.new("RGB", (6, 6), (200, 10, 10)).save(tmp_path / "images" / "a" / "red.png")
    (tmp_path / "images" / "a" / "notes.txt").write_text("not an image, not a .png: ignored")
    (tmp_path / "images" / "stray.png").write_bytes(b"outside the class folders: ignored")
    schema = infer_schema(str(root), None)
    assert schema["input_shape"] == [6, 6, 3] and schema["num_images"] == 16


def test_image_folder_errors(tmp_path):
    root = write_image_folder(tmp_path / "images", per_class=5)
    os.makedirs(tmp_path / "images" / "d")
    _fail(r"class folder .*images/d has no images.*add .png, .jpg, .jpeg files to it or remove the folder",
          root, None)
    (tmp_path / "images" / "d" / "x.txt").write_text("x")
    _fail(r"images/d has no images \(it holds 1 other file", root, None)
    (tmp_path / "images" / "d" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _fail(r"images/d/broken.png cannot be read as an image .*replace it .* or remove it", root, None)
    (tmp_path / "images" / "d" / "broken.png").write_bytes(encode(pattern(0, np.random.default_rng(0)))[:40])
    _fail(r"broken.png cannot be read as an image", root, None)
    (tmp_path / "images" / "d" / "broken.png").write_bytes(encode(pattern(0, np.random.default_rng(0)), "GIF"))
    _fail(r"broken.png is a GIF image; convert it to PNG or JPEG", root, None)
    (tmp_path / "images" / "d" / "broken.png").write_bytes(encode(pattern(0, np.random.default_rng(0), size=8)))
    _fail(r"different sizes \(6x6 in .*, 8x8 in .*d/broken.png, 2 sizes in all\); pass --input-shape HEIGHT,WIDTH",
          root, None)
    assert infer_schema(root, None, None, None, "6,6")["task"]["num_classes"] == 4  # resized: fine
    _fail("its input kind is image, not sequence", root, None, None, "sequence")
    _fail("regression needs a CSV or TFRecords", root, None, "regression")
    one = write_image_folder(tmp_path / "one", per_class=3)
    for name in ("b", "c"):
        for f in os.listdir(os.path.join(one, name)):
            os.remove(os.path.join(one, name, f))
        os.rmdir(os.path.join(one, name))
    _fail("has 1 class folder.*at least two", one, None)
    few = write_image_folder(tmp_path / "few", per_class=2)
    _fail("only 6 images, too few", few, None)


def test_shaped_table_schema(tmp_path):
    seq = write_sequence_csv(tmp_path / "seq.csv")
    schema = infer_schema(seq, "y", None, "sequence")
    assert schema["kind"] == "sequence" and schema["input_shape"] == [12, 1]
    [column] = schema["columns"]
    assert column["kind"] == "array" and column["shape"] == [12] and column["serving_name"] == "sequence"
    assert column["source_columns"] == [f"t{i}" for i in range(12)]
    assert infer_schema(seq, "y", None, None, "12,1")["input_shape"] == [12, 1]  # a 2-D shape: a sequence
    assert infer_schema(seq, "y", None, None, "6,2")["input_shape"] == [6, 2]
    assert infer_schema(seq, "y")["kind"] == "tabular"  # nothing declared: a table, as before
    pixels = write_pixel_csv(tmp_path / "pixels.csv")
    image = infer_schema(pixels, "y", None, None, "6,6,1")
    assert image["kind"] == "image" and image["input_shape"] == [6, 6, 1]
    assert image["columns"][0]["serving_name"] == "pixels" and image["columns"][0]["shape"] == [6, 6, 1]
    assert infer_schema(pixels, "y", None, "image")["input_shape"] == [6, 6, 1]  # 36 columns: a 6x6 square
    assert infer_schema(pixels, "y", None, "image", "6,6")["columns"][0]["shape"] == [6, 6]


def test_shaped_table_errors(tmp_path):
    seq = write_sequence_csv(tmp_path / "seq.csv")
    _fail(r"--input-shape 28,28,1 needs 784 values per row, but .*seq.csv has 12 feature columns besides the "
          r"label 'y'", seq, "y", None, None, "28,28,1")
    _fail("not a square number of pixels", seq, "y", None, "image")
    _fail("does not fit image inputs", seq, "y", None, "image", "12")
    _fail("does not match the table", seq, "y", None, "tabular", "5")
    _fail("is not a shape", seq, "y", None, None, "twelve")
    _fail("is not an input kind", seq, "y", None, "video")
    with open(tmp_path / "mixed.csv", "w") as f:
        f.write("a,b,c,d,y\n" + "".join(f"{i},{i},{i},{'x' if i % 2 else 'z'},{i % 2}\n" for i in range(20)))
    _fail("column 'd' .* is not numeric", str(tmp_path / "mixed.csv"), "y", None, None, "2,2")
    _fail("pass --label", seq, None)


def test_tfrecord_schemas(tmp_path):
    png = write_tfrecords(tmp_path / "png.tfrecord.gz", kind="png")
    assert detect_format(png) == "tfrecord" and detect_format(str(tmp_path)) == "tfrecord"
    schema = infer_schema(png, "label")
    assert schema["kind"] == "image" and schema["input_shape"] == [6, 6, 1]
    assert schema["columns"][0]["kind"] == "image" and schema["ignored_features"] == ["source"]
    assert schema["task"]["classes"] == ["0", "1", "2"]
    values = write_tfrecords(tmp_path / "seq.tfrecord", kind="sequence", extra=False)
    assert infer_schema(values, "label")["input_shape"] == [12]  # a float list: a feature vector
    assert infer_schema(values, "label", None, "sequence")["input_shape"] == [12, 1]
    assert infer_schema(values, "label", None, None, "12,1")["kind"] == "sequence"
    pixels = write_tfrecords(tmp_path / "pixels.tfrecords", kind="pixels", extra=False)
    schema = infer_schema(pixels, "label", None, None, "6,6,1")
    assert schema["kind"] == "image" and schema["columns"][0] == {
        "name": "values", "kind": "array", "shape": [6, 6, 1], "serving_name": "values"}
    assert infer_schema(pixels, "label", None, "image")["input_shape"] == [6, 6, 1]


def test_tfrecord_errors(tmp_path):
    import tensorflow as tf
    values = write_tfrecords(tmp_path / "seq.tfrecord", kind="sequence")
    _fail("label feature 'y' is not in the examples.*their features are: label, source, values", values, "y")
    _fail("--input-shape 5,5 needs 25 values, but feature 'values' .* holds 12", values, "label", None, None, "5,5")
    (tmp_path / "junk.tfrecord").write_bytes(b"this is not a tfrecord file at all")
    _fail("cannot be read as TFRecords", str(tmp_path / "junk.tfrecord"), "label")
    with tf.io.TFRecordWriter(str(tmp_path / "ragged.tfrecord")) as writer:
        for i in range(20):
            feature = {"v": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0] * (3 + i % 2))),
                       "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    _fail("lists of different lengths", str(tmp_path / "ragged.tfrecord"), "label")
    _fail("does not exist", str(tmp_path / "nothing.tfrecord"), "label")


def test_routes_read_a_non_local_filesystem(tmp_path):
    """An image folder and a folder of TFRecords on TensorFlow's in-process ram:// filesystem (standing in for
    gs://): detected and read through tf.io.gfile like local ones."""
    import tensorflow as tf

    def copy_tree(local, remote):
        for folder, _, names in os.walk(local):
            target = os.path.join(remote, os.path.relpath(folder, local)).removesuffix("/.")
            tf.io.gfile.makedirs(target)
            for name in names:
                tf.io.gfile.copy(os.path.join(folder, name), os.path.join(target, name), overwrite=True)
        return remote

    images = write_image_folder(tmp_path / "images", per_class=5)
    remote = copy_tree(images, "ram://test_inputs/images")
    assert detect_format(remote) == "image_folder"
    assert infer_schema(remote, None) == infer_schema(images, None)
    (tmp_path / "records").mkdir()
    write_tfrecords(tmp_path / "records" / "seq.tfrecord", kind="sequence", extra=False)
    remote = copy_tree(str(tmp_path / "records"), "ram://test_inputs/records")
    assert detect_format(remote) == "tfrecord" and detect_format(remote + "/") == "tfrecord"
    assert infer_schema(remote, "label") == infer_schema(str(tmp_path / "records"), "label")


# ---- Preprocess on each route, and serving parity ---------------------------------------------------------

def _preprocess(data, schema, out):
    from components.preprocess.executor import run_preprocess
    run_preprocess(data, schema, str(out / "examples"), str(out / "transform"), seed=0)
    return str(out / "examples"), str(out / "transform")


def _small_model(schema, seed=0):
    import keras
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input(tuple(schema["input_shape"])), keras.layers.Flatten(),
                             keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)])


def _assert_serving_parity(schema, examples_dir, transform_dir, export_dir):
    """The SavedModel on the raw held-out inputs == the Keras model on the transformed held-out x."""
    import tensorflow as tf
    from modelsearch.data import load_arrays as load_split
    from modelsearch.raw_examples import evaluate_saved_model, load_raw_split, serve
    from modelsearch.export import export_serving_model

    model = _small_model(schema)
    export_serving_model(model, transform_dir, schema, export_dir)
    inputs, labels = load_raw_split(examples_dir, schema)
    x_test, y_test = load_split(examples_dir, "test", schema)
    assert len(labels) == len(y_test) > 0 and sorted(labels) == sorted(y_test)
    got = serve(export_dir, inputs)["probabilities"]
    expected = tf.nn.softmax(model(x_test)).numpy()
    order = lambda p: np.lexsort(np.round(p, 4).T[::-1])  # noqa: E731  (TFRecord order is the runner's)
    np.testing.assert_allclose(got[order(got)], expected[order(expected)], atol=1e-5)
    accuracy = float(np.mean(np.argmax(expected, axis=1) == y_test))
    assert evaluate_saved_model(export_dir, examples_dir, schema) == {"accuracy": pytest.approx(accuracy)}
    return inputs


@pytest.mark.slow
def test_image_folder_preprocess_and_serving(tmp_path):
    import tensorflow as tf
    from PIL import Image
    from modelsearch.data import load_arrays as load_split
    root = write_image_folder(tmp_path / "images", per_class=20, jpeg_every=3)
    schema = infer_schema(root, None)
    examples_dir, transform_dir = _preprocess(root, schema, tmp_path)
    x, y = load_split(examples_dir, "train", schema)
    assert x.shape[1:] == (6, 6, 1) and set(y) == {0, 1, 2}
    assert abs(x.mean()) < 1e-3 and abs(x.std() - 1) < 1e-2  # scaled by the training pixels' mean and deviation
    export_dir = str(tmp_path / "serving")
    inputs = _assert_serving_parity(schema, examples_dir, transform_dir, export_dir)
    assert list(inputs) == ["image"] and isinstance(inputs["image"][0], bytes)  # the raw test: encoded bytes
    # The transform decodes exactly like Pillow (PNGs are lossless): x is an affine map of the pixel values.
    png = encode(pattern(1, np.random.default_rng(5)))
    layer = tf.saved_model.load(export_dir)
    pixels = np.asarray(Image.open(io.BytesIO(png)), np.float32)
    transformed = layer.tft_layer({"image": tf.constant([png])})["x"].numpy()[0, :, :, 0]
    slope, offset = np.polyfit(pixels.ravel(), transformed.ravel(), 1)
    np.testing.assert_allclose(transformed, slope * pixels + offset, atol=1e-4)
    # Another size is resized inside the served graph.
    big = encode(pattern(0, np.random.default_rng(1), size=12))
    served = layer.signatures["serving_default"](image=tf.constant([big, png]))
    assert served["probabilities"].shape == (2, 3) and served["classes"].dtype == tf.string


@pytest.mark.slow
def test_sequence_table_preprocess_and_serving(tmp_path):
    import tensorflow as tf
    from modelsearch.data import load_arrays as load_split
    data = write_sequence_csv(tmp_path / "seq.csv")
    schema = infer_schema(data, "y", None, "sequence", "12")
    examples_dir, transform_dir = _preprocess(data, schema, tmp_path)
    x, _ = load_split(examples_dir, "train", schema)
    assert x.shape[1:] == (12, 1)
    inputs = _assert_serving_parity(schema, examples_dir, transform_dir, str(tmp_path / "serving"))
    assert list(inputs) == ["sequence"] and inputs["sequence"].shape[1:] == (12,)  # the raw sequence
    signature = tf.saved_model.load(str(tmp_path / "serving")).signatures["serving_default"]
    assert signature.structured_input_signature[1]["sequence"].shape.as_list() == [None, 12]


@pytest.mark.slow
def test_tfrecord_routes_preprocess_and_serving(tmp_path):
    png = write_tfrecords(tmp_path / "png.tfrecord.gz", kind="png")
    schema = infer_schema(png, "label")
    examples_dir, transform_dir = _preprocess(png, schema, tmp_path / "png")
    inputs = _assert_serving_parity(schema, examples_dir, transform_dir, str(tmp_path / "png" / "serving"))
    assert list(inputs) == ["image"]
    pixels = write_tfrecords(tmp_path / "pixels.tfrecord", kind="pixels")
    assert infer_schema(pixels, "label", None, None, "6,6")["kind"] == "sequence"  # 2-D, no kind: a sequence
    schema = infer_schema(pixels, "label", None, "image", "6,6")
    assert schema["input_shape"] == [6, 6, 1]
    examples_dir, transform_dir = _preprocess(pixels, schema, tmp_path / "pixels")
    inputs = _assert_serving_parity(schema, examples_dir, transform_dir, str(tmp_path / "pixels" / "serving"))
    assert inputs["values"].shape[1:] == (6, 6)  # raw pixel values, in the declared shape
