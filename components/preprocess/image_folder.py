"""Input route: a folder of images with one sub-folder per class (PNG / JPEG).

    data/cat/001.png, data/cat/002.jpg, data/dog/001.png, ...   ->  classes cat, dog

Every image is checked here (see images.py) so that a bad file stops the run with its name, before any
pipeline. The rows the pipeline reads are the ENCODED bytes: the transform decodes and resizes them with
TensorFlow (tf.io.decode_image, tf.image.resize), so the served model takes encoded bytes and decodes
them exactly as training did. The folder is read through tf.io.gfile: local or gs:// alike.
"""
from __future__ import annotations

import os

from common.errors import UserError
from components.preprocess.images import image_column, image_info, image_shape
from components.preprocess.values import sorted_classes

FORMAT = "image_folder"
DEFAULT_LABEL = "label"   # the class folders are the label: --label only names it
LABEL_NOUN = "label"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
MIN_IMAGES = 10


def _isdir(path: str) -> bool:
    import tensorflow as tf

    return tf.io.gfile.isdir(path)


def _listdir(path: str) -> list[str]:
    """The visible names in a folder, sorted (a gs:// listing marks sub-folders with a trailing /: dropped)."""
    import tensorflow as tf

    return sorted(n.rstrip("/") for n in tf.io.gfile.listdir(path) if not n.startswith("."))


def read_bytes(path: str) -> bytes:
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def detect(path: str) -> bool:
    """A folder with sub-folders (the classes)."""
    return _isdir(path) and any(_isdir(os.path.join(path, n)) for n in _listdir(path))


def list_images(root: str) -> list[tuple[str, str]]:
    """(path relative to root, class) of every image, in a fixed order; errors name the folder and the fix."""
    classes = [n for n in _listdir(root) if _isdir(os.path.join(root, n))]
    if len(classes) < 2:
        raise UserError(f"{root} has {len(classes)} class folder(s); classification needs at least two "
                        f"sub-folders, one per class, each holding that class's images")
    images = []
    for name in classes:
        files = [f for f in _listdir(os.path.join(root, name)) if not _isdir(os.path.join(root, name, f))]
        found = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not found:
            others = f" (it holds {len(files)} other file(s))" if files else ""
            raise UserError(f"class folder {os.path.join(root, name)} has no images{others}; add "
                            f"{', '.join(IMAGE_EXTENSIONS)} files to it or remove the folder")
        images += [(f"{name}/{f}", name) for f in found]
    if len(images) < MIN_IMAGES:
        raise UserError(f"{root} has only {len(images)} images, too few to split into train, validation and "
                        f"test; add images (at least {MIN_IMAGES}, better hundreds per class)")
    return images


def infer_schema(root: str, label: str, problem_type: str | None, kind: str | None,
                 declared: list[int] | None) -> dict:
    """One image column; the classes are the sub-folders' names."""
    if kind not in (None, "image"):
        raise UserError(f"{root} is a folder of images; its input kind is image, not {kind}: leave "
                        f"--input-kind out or pass --input-kind image")
    if problem_type == "regression":
        raise UserError(f"{root} is a folder of class folders, which gives class labels; regression needs a CSV "
                        f"or TFRecords with a numeric label")
    images = list_images(root)
    infos = [(*image_info(read_bytes(os.path.join(root, path)), os.path.join(root, path)), os.path.join(root, path))
             for path, _ in images]
    shape = image_shape(infos, declared, root)
    classes = sorted_classes({name for _, name in images})
    return {"format": FORMAT, "label": label, "columns": [image_column(label, shape)],
            "task": {"type": "classification", "num_classes": len(classes), "classes": classes},
            "input_shape": shape, "num_images": len(images)}


def row_reader(root: str, schema: dict):
    """A function from an image's path (relative to root) to its raw row: encoded bytes and class name."""
    [column] = schema["columns"]
    label = schema["label"]

    def read(path: str) -> dict:
        return {column["name"]: read_bytes(os.path.join(root, path)), label: path.split("/")[0].encode("utf-8")}

    return read


def source(pipeline, schema: dict, data_path: str, example_files: list[str] | None):
    """(PCollection of image paths relative to data_path, path -> raw row); example_files is unused."""
    import apache_beam as beam

    paths = [path for path, _ in list_images(data_path)]
    return pipeline | "List" >> beam.Create(paths), row_reader(data_path, schema)
