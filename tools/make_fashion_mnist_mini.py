"""Writes the small Fashion-MNIST image folder that ships in `data/fashion_mnist_mini/`.

The quickstart and the tests need real images offline. Debian's `dataset-fashion-mnist` package
carries the original idx files; this script takes the first N images of every class from its train
and test files and writes them as PNGs in the layout `--image_dir` reads:

    apt-get install -y dataset-fashion-mnist
    python tools/make_fashion_mnist_mini.py --per_class_train=200 --per_class_test=50

The selection is deterministic (file order), so re-running it reproduces the committed folder.
"""

import gzip
import pathlib
import struct

import numpy as np
from absl import app, flags
from PIL import Image

CLASS_NAMES = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot")

_SOURCE = flags.DEFINE_string("source", "/usr/share/datasets/fashion-mnist",
                              "Folder with the four original Fashion-MNIST idx .gz files.")
_OUT = flags.DEFINE_string("out", "data/fashion_mnist_mini", "Folder to write.")
_TRAIN = flags.DEFINE_integer("per_class_train", 200, "Training images per class.")
_TEST = flags.DEFINE_integer("per_class_test", 50, "Test images per class.")


def read_idx(path: pathlib.Path) -> np.ndarray:
    """Reads an idx file (the format of the original MNIST-style distribution)."""
    with gzip.open(path, "rb") as f:
        _, _, dims = struct.unpack(">HBB", f.read(4))
        shape = struct.unpack(">" + "I" * dims, f.read(4 * dims))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(shape)


def write_split(images, labels, per_class: int, split_dir: pathlib.Path) -> None:
    for class_id, class_name in enumerate(CLASS_NAMES):
        class_dir = split_dir / class_name
        class_dir.mkdir(parents=True, exist_ok=True)
        for index in np.flatnonzero(labels == class_id)[:per_class]:
            image = Image.fromarray(images[index], mode="L")
            image.save(class_dir / f"{index:05d}.png", optimize=True)


def main(argv):
    del argv
    source, out = pathlib.Path(_SOURCE.value), pathlib.Path(_OUT.value)
    splits = (("train", "train", _TRAIN.value), ("test", "t10k", _TEST.value))
    for split, prefix, per_class in splits:
        images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
        write_split(images, labels, per_class, out / split)
        print(f"wrote {per_class} images per class to {out / split}")


if __name__ == "__main__":
    app.run(main)
