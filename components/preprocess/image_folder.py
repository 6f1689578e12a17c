"""Input route: a folder of images with one sub-folder per class (PNG / JPEG).

    data/cat/001.png, data/cat/002.jpg, data/dog/001.png, ...   ->  classes cat, dog

Every image is checked here (opened and decoded with Pillow) so that a bad file stops the run with its
name, before any pipeline. The rows the pipeline reads are the ENCODED bytes: the transform decodes and
resizes them with TensorFlow (tf.io.decode_image, tf.image.resize), so the served model takes encoded
bytes and decodes them exactly as training did.
"""
from __future__ import annotations

import os

from modelsearch.errors import UserError
from modelsearch.kinds import model_shape, shape_text

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
IMAGE_FORMATS = ("PNG", "JPEG")
DEFAULT_LABEL = "label"
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
MIN_IMAGES = 10


def _gfile():
    import tensorflow as tf
    return tf.io.gfile


def _isdir(path: str) -> bool:
    return _gfile().isdir(path) if "://" in path else os.path.isdir(path)


def _listdir(path: str) -> list[str]:
    names = _gfile().listdir(path) if "://" in path else os.listdir(path)
    return sorted(n.rstrip("/") for n in names if not n.startswith("."))


def read_bytes(path: str) -> bytes:
    if "://" in path:
        with _gfile().GFile(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def is_image_folder(path: str) -> bool:
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


def image_info(data: bytes, where: str) -> tuple[int, int, str]:
    """(height, width, Pillow mode) of an encoded image, after decoding it completely."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.format not in IMAGE_FORMATS:
                raise UserError(f"{where} is a {image.format} image; convert it to PNG or JPEG")
            return image.height, image.width, image.mode
    except UserError:
        raise
    except Exception as e:  # Pillow raises many types for broken files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{where} cannot be read as an image ({reason}); replace it with a valid PNG or JPEG "
                        f"file or remove it") from None


def image_shape(infos: list[tuple[int, int, str, str]], declared: list[int] | None, data_path: str) -> list[int]:
    """The model's (height, width, channels) for images with these (height, width, mode, where) infos.

    A declared shape resizes every image; without one, every image must have the same size. Channels:
    1 when every image is grayscale, else 3 (RGB; alpha is dropped), unless declared."""
    if declared is not None:
        shape = model_shape("image", declared)
        if shape[2] not in (1, 3):
            raise UserError(f"--input-shape {shape_text(declared)}: images are decoded to 1 (grayscale) "
                            f"or 3 (RGB) channels; give height,width,1 or height,width,3")
        return shape
    sizes = {}
    for height, width, _mode, where in infos:
        sizes.setdefault((height, width), where)
    if len(sizes) > 1:
        (a, first), (b, second) = list(sizes.items())[:2]
        raise UserError(f"the images of {data_path} have different sizes ({a[0]}x{a[1]} in {first}, "
                        f"{b[0]}x{b[1]} in {second}, {len(sizes)} sizes in all); pass --input-shape HEIGHT,WIDTH "
                        f"to resize every image to one size")
    [(height, width)] = sizes
    channels = 1 if all(mode in GRAY_MODES for _h, _w, mode, _where in infos) else 3
    return [height, width, channels]


def image_column(label: str, shape: list[int], name: str = "image") -> dict:
    """The one raw feature: encoded image bytes, decoded to shape[2] channels and resized to shape[:2]."""
    name = name if name != label else f"{name}_input"
    return {"name": name, "kind": "image", "serving_name": name, "size": shape[:2], "channels": shape[2]}


def infer_schema(root: str, label: str, problem_type: str | None, kind: str | None,
                 declared: list[int] | None) -> dict:
    from components.preprocess.schema import sorted_classes

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
    return {"format": "image_folder", "label": label, "columns": [image_column(label, shape)],
            "task": {"type": "classification", "num_classes": len(classes), "classes": classes},
            "input_shape": shape, "num_images": len(images)}


def row_reader(root: str, schema: dict):
    """A function from an image's path (relative to root) to its raw row: encoded bytes and class name."""
    [column] = schema["columns"]
    label = schema["label"]

    def read(path: str) -> dict:
        return {column["name"]: read_bytes(os.path.join(root, path)), label: path.split("/")[0].encode("utf-8")}

    return read
