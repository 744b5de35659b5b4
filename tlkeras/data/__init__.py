"""Input data: a source's splits as batched `tf.data`, for training and for `tlkeras evaluate`.

Every split yields `(image, label)` with `image` a float32 [H, W, 3] RGB tensor in 0-255 at the
model's input size and `label` an integer class id (`LABEL_CLASSES`) or a float32 vector of
targets (`LABEL_NUMBERS`). Preprocessing for the backbone happens inside the model, so the same
raw pixels feed training, evaluation and the exported SavedModel.

The readers (`sources.source_for`: TFDS, class folders, CSVs of targets) give unbatched splits;
this module only decides whether decoded images fit in memory and builds the pipelines
(`pipeline`).
"""

import dataclasses
import logging

import numpy as np
import tensorflow as tf

from tlkeras.config import DataConfig
from tlkeras.data.pipeline import (
    TrainingData,
    fits_in_memory,
    pipeline,
    pipeline_options,
    training_data,
)
from tlkeras.data.sources import LABEL_CLASSES, LABEL_NUMBERS, source_for

__all__ = ["LABEL_CLASSES", "LABEL_NUMBERS", "DataSplits", "TrainingData", "fits_in_memory",
           "load", "load_split", "pipeline", "pipeline_options", "training_data"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DataSplits:
    """Training epochs, batched validation/test pipelines, output names, sizes."""

    train: TrainingData
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    output_names: list[str]  # Class names in label order, or regression target names.
    sizes: dict[str, int | None]  # Examples per split; None where tf.data cannot tell.
    images_cached: bool  # Decoded, resized images kept in memory after the first epoch.
    batch_size: int  # Global batch size.
    skipped_files: list[str]  # Image-folder files that do not decode, left out of every split.
    train_targets: np.ndarray | None = None  # [N, targets] float32 for LABEL_NUMBERS.
    fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)  # See SourceSplits.


def load(data: DataConfig, labels: str, seed: int, image_size: int,
         batch_size: int | None = None) -> DataSplits:
    """Loads the configured data source with `labels` and builds its pipelines.

    `batch_size` is the global batch (per-replica --batch_size x replicas); default --batch_size.
    """
    batch_size = batch_size or data.batch_size
    source = source_for(data, labels, seed).load(image_size)
    splits = {"train": source.train, "validation": source.validation, "test": source.test}
    sizes = {name: _size(dataset) for name, dataset in splits.items() if dataset is not None}
    known = None not in sizes.values()
    cache = known and fits_in_memory(sum(sizes.values()), image_size * image_size * 3 * 4,
                                     data.cache_memory_mb)  # float32 RGB after resizing
    in_memory = "" if cache else None
    names = source.output_names
    log.info("Data: %s examples per split, %s; decoded images %s.", sizes,
             f"targets {names}" if labels == LABEL_NUMBERS else f"{len(names)} classes",
             "cached in memory" if cache else
             f"decoded every epoch (over --cache_memory_mb={data.cache_memory_mb} or size "
             "unknown)")
    options = pipeline_options(data.deterministic)
    return DataSplits(
        train=training_data(source.train, sizes["train"], batch_size, seed, data.shuffle_buffer,
                            options, in_memory),
        validation=pipeline(source.validation, batch_size, options, in_memory),
        test=None if source.test is None else pipeline(source.test, batch_size, options,
                                                       in_memory),
        output_names=names, sizes=sizes, images_cached=cache, batch_size=batch_size,
        skipped_files=source.skipped_files, train_targets=source.train_targets,
        fingerprints=source.fingerprints)


def load_split(data: DataConfig, labels: str, seed: int, split: str,
               image_size: int) -> tuple[tf.data.Dataset, list[str], list[str]]:
    """One split alone, batched with --batch_size in order (e.g. to evaluate an export on it).

    Returns (batches, output names, skipped unreadable files). The `split` field names it.
    """
    split_examples = source_for(data, labels, seed).load_split(split, image_size)
    batches = pipeline(split_examples.examples, data.batch_size,
                       pipeline_options(data.deterministic), cache_file=None)
    return batches, split_examples.output_names, split_examples.skipped_files


def _size(dataset: tf.data.Dataset) -> int | None:
    size = int(dataset.cardinality())
    return size if size >= 0 else None
