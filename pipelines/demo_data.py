"""The embedded default dataset: scikit-learn's bundled digits (8x8 pixels, 10 classes), no download."""
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
