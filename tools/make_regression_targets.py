"""Writes regression targets for the committed Fashion-MNIST images: `<image_dir>/<split>.csv`.

Two real, exactly known continuous properties of each real image, for `--task=regression`:

- `mean_brightness`: the mean grey value, 0-255;
- `ink_fraction`: the fraction of pixels brighter than 10% of full scale (> 25), 0-1.

They differ in scale by two orders of magnitude, which exercises per-target normalisation. Paths
are relative to `<image_dir>/<split>/`, as tlkeras reads them:

    python tools/make_regression_targets.py --image_dir=data/fashion_mnist_mini

Deterministic: re-running it reproduces the committed CSV files.
"""

import csv
import pathlib

import numpy as np
from absl import app, flags
from PIL import Image

_IMAGE_DIR = flags.DEFINE_string("image_dir", "data/fashion_mnist_mini",
                                 "Folder of <split>/<class>/<image>.png.")
_SPLITS = flags.DEFINE_list("splits", ["train", "test"], "Splits to write a CSV for.")
INK_THRESHOLD = 25


def targets(image_path: pathlib.Path) -> tuple[float, float]:
    pixels = np.asarray(Image.open(image_path).convert("L"), dtype=np.float64)
    return float(pixels.mean()), float((pixels > INK_THRESHOLD).mean())


def main(argv):
    del argv
    root = pathlib.Path(_IMAGE_DIR.value)
    for split in _SPLITS.value:
        with open(root / f"{split}.csv", "w", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(["path", "mean_brightness", "ink_fraction"])
            for image in sorted((root / split).glob("*/*.png")):
                brightness, ink = targets(image)
                writer.writerow([image.relative_to(root / split).as_posix(),
                                 f"{brightness:.4f}", f"{ink:.4f}"])


if __name__ == "__main__":
    app.run(main)
