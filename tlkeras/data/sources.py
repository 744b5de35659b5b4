"""Data sources: one reader per kind of data, behind one interface, chosen in one place.

A reader turns a source (a TFDS dataset, a folder of class folders, a folder with CSVs of
targets) into unbatched `(image, label)` datasets: `image` float32 [H, W, 3] RGB in 0-255 at the
model's size, `label` an integer class id (`LABEL_CLASSES`) or a float32 vector of targets
(`LABEL_NUMBERS`). Training (`load`) and `tlkeras evaluate` (`load_split`) read through the same
reader, so the two never disagree on what a split holds. Caching and batching are
`tlkeras.data.pipeline`'s. A new source is one new module plus one line in `READERS`.
"""

import abc
import dataclasses
import hashlib
import importlib
import os

import numpy as np
import tensorflow as tf

from tlkeras.config import DataConfig

LABEL_CLASSES = "classes"  # One class id per image; output names are the class names.
LABEL_NUMBERS = "numbers"  # A vector of real targets per image; output names are the targets'.


@dataclasses.dataclass
class SourceSplits:
    """Unbatched train, validation and (optional) test examples of one source."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    output_names: list[str]  # Class names in label order, or regression target names.
    skipped_files: list[str]  # Image files that do not decode, left out of every split.
    train_targets: np.ndarray | None = None  # [N, targets] float32 for LABEL_NUMBERS.
    # What each split's examples are, as text that changes whenever they change ("train",
    # "validation"): the key of cached activations reused across runs (--feature_store).
    fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)


def files_fingerprint(files: list[tuple[str, object]]) -> str:
    """A split's listed files in order, with sizes, modification times and labels, hashed."""
    digest = hashlib.sha256()
    for path, label in files:
        stat = os.stat(path)
        digest.update(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\0"
                      f"{np.asarray(label).tolist()}\n".encode())
    return f"files:{len(files)}:{digest.hexdigest()}"


@dataclasses.dataclass
class SplitExamples:
    """One split alone, unbatched and in a fixed order (e.g. to evaluate an export on it)."""

    examples: tf.data.Dataset
    output_names: list[str]
    skipped_files: list[str]


class Source(abc.ABC):
    """A reader of one kind of data source, for one kind of label."""

    def __init__(self, data: DataConfig, seed: int):
        self.data = data
        self.seed = seed  # Orders and carves splits reproducibly.

    @abc.abstractmethod
    def load(self, image_size: int) -> SourceSplits:
        """The configured train, validation and test splits at `image_size`."""

    @abc.abstractmethod
    def load_split(self, split: str, image_size: int) -> SplitExamples:
        """The split named `split` (the `split` field) alone, in order, at `image_size`."""


# (source, labels) -> "module.Class" in this package. A module is imported only when its reader
# is chosen, so an optional package (tensorflow-datasets) is needed only to read its source.
READERS = {
    ("tfds", LABEL_CLASSES): "tfds_source.TfdsClasses",
    ("tfds", LABEL_NUMBERS): "tfds_source.TfdsNumbers",
    ("image_dir", LABEL_CLASSES): "image_folder.ImageFolder",
    ("image_dir", LABEL_NUMBERS): "regression_csv.RegressionCsv",
}


def source_for(data: DataConfig, labels: str, seed: int) -> Source:
    """The reader of the configured source (--dataset or --image_dir) for `labels`."""
    data.check_one_source()
    key = ("tfds" if data.dataset else "image_dir", labels)
    if key not in READERS:
        raise ValueError(f"no reader for {key}; readers: {sorted(READERS)}")
    module, reader = READERS[key].split(".")
    return getattr(importlib.import_module(f"{__package__}.{module}"), reader)(data, seed)
