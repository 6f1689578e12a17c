"""Tiny learnable datasets for every input route: image folders, TFRecords, shaped CSV tables."""
import csv
import io
import os

import numpy as np

CLASSES = ("a", "b", "c")


def pattern(label: int, rng, size: int = 6) -> np.ndarray:
    """A size x size grayscale image: a bright top half (a), left half (b) or diagonal (c), plus noise."""
    image = rng.integers(0, 60, (size, size)).astype(np.float32)
    if label == 0:
        image[: size // 2] += 180
    elif label == 1:
        image[:, : size // 2] += 180
    else:
        image[np.eye(size, dtype=bool)] += 180
    return np.clip(image, 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def write_image_folder(root, per_class: int = 20, size: int = 6, seed: int = 0, jpeg_every: int = 0) -> str:
    """root/<class>/<i>.png (every jpeg_every-th image a JPEG)."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            jpeg = jpeg_every and i % jpeg_every == 0
            with open(os.path.join(root, name, f"{i:03d}.{'jpg' if jpeg else 'png'}"), "wb") as f:
                f.write(encode(pattern(label, rng, size), "JPEG" if jpeg else "PNG"))
    return str(root)


def sequence(label: int, rng, steps: int = 12) -> np.ndarray:
    """A bump early (0), in the middle (1) or late (2), plus noise."""
    x = rng.normal(0, 0.3, steps)
    centre = [steps // 6, steps // 2, 5 * steps // 6][label]
    x[max(0, centre - 1):centre + 2] += 3.0
    return x


def write_sequence_csv(path, n: int = 90, steps: int = 12, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"t{i}" for i in range(steps)] + ["y"])
        for i in range(n):
            writer.writerow([f"{v:.4f}" for v in sequence(i % 3, rng, steps)] + [CLASSES[i % 3]])
    return str(path)


def write_pixel_csv(path, n: int = 90, size: int = 6, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"p{i}" for i in range(size * size)] + ["y"])
        for i in range(n):
            writer.writerow([int(v) for v in pattern(i % 3, rng, size).ravel()] + [i % 3])
    return str(path)


def write_tfrecords(path, n: int = 90, kind: str = "png", seed: int = 0, extra: bool = True) -> str:
    """tf.Examples with `image` (encoded PNG bytes) or `values` (a float list: a sequence of 12 steps, or
    kind "pixels": 36 pixel values), an int64 `label` and, with extra, a scalar `source` feature."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    options = "GZIP" if str(path).endswith(".gz") else None
    with tf.io.TFRecordWriter(str(path), options=options) as writer:
        for i in range(n):
            label = i % 3
            if kind == "png":
                feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encode(pattern(label, rng))]))}
            else:
                values = sequence(label, rng) if kind == "sequence" else pattern(label, rng).ravel() / 255.0
                feature = {"values": tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))}
            feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
            if extra:
                feature["source"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"synthetic"]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return str(path)
