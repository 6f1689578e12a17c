"""Encoded images as a model input, shared by the image_folder and tfrecords routes: check every image
(decoded with Pillow, so a bad one stops the run with its name, before any pipeline), pick the model's
(height, width, channels), and describe the one `image` column.

A leaf: it imports no route (only values, a leaf too). The pipeline itself decodes with TensorFlow inside the
transform graph.
"""
from __future__ import annotations

from common.errors import UserError, first_line
from modelsearch.kinds import model_shape, shape_text

IMAGE_FORMATS = ("PNG", "JPEG")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def image_info(data: bytes, where: str) -> tuple[int, int, str]:
    """(height, width, Pillow mode) of an encoded image, after decoding it completely."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.format not in IMAGE_FORMATS:
                raise UserError(f"{where} is a {image.format} image; convert it to PNG or JPEG")
            return image.height, image.width, image.mode
    except UserError:
        raise
    except UnidentifiedImageError:  # its message names the BytesIO it was read from, not the file
        reason = "not an image format Pillow knows" if data else "the file is empty"
    except Exception as e:  # Pillow raises many types for broken files
        reason = first_line(e)
    raise UserError(f"{where} cannot be read as an image ({reason}); replace it with a valid PNG or JPEG "
                    f"file or remove it")


def image_shape(infos: list[tuple[int, int, str, str]], declared: list[int] | None, data_path: str) -> list[int]:
    """The model's (height, width, channels) for images with these (height, width, mode, where) infos.

    A declared shape resizes every image; without one, every image must have the same size. Channels:
    1 when every image is grayscale, else 3 (RGB; alpha is dropped), unless declared."""
    if declared is not None:
        if len(declared) == 3 and declared[2] not in (1, 3):  # before model_shape, whose error is about arrays
            raise UserError(f"--input-shape {shape_text(declared)}: images are decoded to 1 (grayscale) "
                            f"or 3 (RGB) channels; give height,width,1 or height,width,3")
        return model_shape("image", declared)
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
