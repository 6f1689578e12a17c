"""Small image sets the benchmarks make locally (nothing is downloaded).

- digits-images: scikit-learn's digits as 8x8 PNGs (the demo's, pipelines/demo_data.py);
- warped-digits: 8,000 grayscale 28x28 images of 10 classes, each one of scikit-learn's digits upscaled,
  scaled (0.75-1.15), rotated (up to 20 degrees either way), placed anywhere on the canvas, with random
  contrast, background and pixel noise: a harder set of MNIST's shape, where one convolution level is not
  enough and a network's start matters.
"""
from __future__ import annotations

import os

IMAGE_SETS = ("digits-images", "warped-digits")


def write_warped_digits(root: str, count: int = 8000, seed: int = 7) -> str:
    """root/<digit>/<index>.png: `count` warped digits (see the module docstring)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    for i in range(count):
        k = int(rng.integers(len(digits.images)))
        image = Image.fromarray((digits.images[k] * 255 / 16).astype(np.uint8)).resize((20, 20), Image.BILINEAR)
        size = int(20 * rng.uniform(0.75, 1.15))
        image = image.resize((size, size), Image.BILINEAR).rotate(rng.uniform(-20, 20), resample=Image.BILINEAR)
        canvas = Image.new("L", (28, 28))
        canvas.paste(image, (int(rng.integers(0, 28 - size + 1)), int(rng.integers(0, 28 - size + 1))))
        pixels = (np.asarray(canvas, dtype=float) * rng.uniform(0.5, 1.0) + rng.normal(0, 25, (28, 28))
                  + rng.uniform(0, 60))
        folder = os.path.join(root, str(int(digits.target[k])))
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(os.path.join(folder, f"{i:05d}.png"))
    return root


def write_image_set(name: str, root: str) -> str:
    """The named set under root (made once)."""
    if name not in IMAGE_SETS:
        raise ValueError(f"unknown image set {name!r}; choose from {', '.join(IMAGE_SETS)}")
    if not os.path.isdir(root):
        if name == "digits-images":
            from pipelines.demo_data import write_digits_images
            write_digits_images(root)
        else:
            write_warped_digits(root)
    return root
