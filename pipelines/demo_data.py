"""The demo datasets, made locally (no download):

- digits:        scikit-learn's bundled digits (8x8 pixels, 10 classes) as a CSV table;
- digits-images: the same digits as 8x8 grayscale PNGs, one folder per class;
- mnist1d:       the procedural 1-D digits of the `mnist1d` package (5,000 sequences of 40 steps) as a
                 CSV whose 40 columns form the sequence (searched with --input-shape 40).
"""
from __future__ import annotations

import csv
import os

DIGITS_LABEL = "digit"


def write_digits_csv(path: str) -> str:
    from sklearn.datasets import load_digits

    digits = load_digits()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"pixel_{i}" for i in range(digits.data.shape[1])] + [DIGITS_LABEL])
        for row, target in zip(digits.data, digits.target):
            writer.writerow([int(v) for v in row] + [int(target)])
    return path


def write_digits_images(root: str) -> str:
    """root/<digit>/<index>.png: the 1,797 digits as 8x8 grayscale PNGs (0..16 scaled to 0..255)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, target) in enumerate(zip(digits.images, digits.target)):
        folder = os.path.join(root, str(int(target)))
        os.makedirs(folder, exist_ok=True)
        pixels = np.clip(np.round(image * 255.0 / 16.0), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:04d}.png"))
    return root


def write_mnist1d_csv(path: str, num_samples: int = 5000, seed: int = 42) -> str:
    """step_0..step_39 and digit: mnist1d's procedural sequences (its default settings, generated here)."""
    import numpy as np
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, seed
    data = make_dataset(args)
    x, y = np.concatenate([data["x"], data["x_test"]]), np.concatenate([data["y"], data["y_test"]])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"step_{i}" for i in range(x.shape[1])] + [DIGITS_LABEL])
        for row, target in zip(x, y):
            writer.writerow([f"{v:.5f}" for v in row] + [int(target)])
    return path


# `modelsearch demo --dataset NAME`: how each demo's data is made and searched. `search` (search configuration
# settings, the trial budget included) are the demo's defaults; the command line and --config win.
DEMOS = {
    "digits": {"write": write_digits_csv, "data": "digits.csv", "label": DIGITS_LABEL,
               "search": {"trials": 6}},
    # Batch normalisation's moving statistics lag for the first epochs on 1,257 training images: batches of 32
    # (twice the updates per epoch) and patience 15 keep early stopping from ending a CNN before they settle.
    "digits-images": {"write": write_digits_images, "data": "digits_images", "label": DIGITS_LABEL,
                      "search": {"trials": 6, "patience": 15, "knobs": {"batch_size": [32, 64, 128]}}},
    "mnist1d": {"write": write_mnist1d_csv, "data": "mnist1d.csv", "label": DIGITS_LABEL,
                "input_kind": "sequence", "input_shape": "40", "search": {"trials": 6}},
}


def write_demo(name: str, data_dir: str) -> str:
    """The demo's data under data_dir (made once: an unchanged file lets a continued demo reuse Preprocess)."""
    demo = DEMOS[name]
    path = os.path.join(data_dir, demo["data"])
    if not os.path.exists(path):
        demo["write"](path)
    return path
