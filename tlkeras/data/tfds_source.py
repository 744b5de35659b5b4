"""TFDS datasets by name (--dataset): a class label, or a numeric label for regression.

The dataset is downloaded and prepared into --data_dir on first use. Without --validation_split,
validation is carved from the end of --train_split with TFDS' split slicing, so it is the same
examples in every run. tensorflow-datasets is optional (`tlkeras[tfds]`); `sources.source_for`
imports this module only for --dataset, and a missing package is a `ConfigError` there.
"""

import os

import numpy as np
import tensorflow as tf

from tlkeras.data.sources import Source, SourceSplits, SplitExamples
from tlkeras.errors import ConfigError

try:
    import tensorflow_datasets as tfds
except ModuleNotFoundError as error:
    if error.name != "tensorflow_datasets":
        raise  # Installed, but broken: show what is missing.
    tfds = None


class TfdsSource(Source):
    """A TFDS dataset's supervised (image, label) pairs, resized; grey images become RGB."""

    numeric = False  # Whether the label is a number or vector of numbers (LABEL_NUMBERS).

    def __init__(self, data, seed):
        if tfds is None:
            raise ConfigError("dataset", "TFDS datasets need the tensorflow-datasets package",
                              "Install it with `pip install 'tlkeras[tfds]'`, or train from a "
                              "folder with --image_dir.")
        super().__init__(data, seed)

    def load(self, image_size: int) -> SourceSplits:
        builder = _builder(self.data)
        image_key, label_key = _supervised_keys(builder, self.data.dataset, self.numeric)
        train_split, validation_split = _train_validation_splits(builder, self.data)
        test_split = self.data.test_split
        datasets = builder.as_dataset(
            split=[train_split, validation_split] + ([test_split] if test_split else []),
            as_supervised=True, read_config=tfds.ReadConfig(shuffle_seed=self.seed),
            shuffle_files=False)
        datasets = [self._examples(dataset, image_size) for dataset in datasets]
        targets = (_train_targets(builder, train_split, image_key, label_key)
                   if self.numeric else None)
        names = (_target_names(label_key, targets.shape[1]) if self.numeric
                 else builder.info.features[label_key].names)
        test = datasets[2] if test_split else None
        dataset = f"tfds:{builder.info.full_name}:{os.path.abspath(builder.data_dir)}"
        return SourceSplits(datasets[0], datasets[1], test, names, [], targets,
                            {"train": f"{dataset}:{train_split}:{self.numeric}",
                             "validation": f"{dataset}:{validation_split}:{self.numeric}"})

    def load_split(self, split: str, image_size: int) -> SplitExamples:
        builder = _builder(self.data)
        _, label_key = _supervised_keys(builder, self.data.dataset, self.numeric)
        _require_split(builder, self.data.dataset, "split", split)
        examples = self._examples(builder.as_dataset(split=split, as_supervised=True,
                                                     shuffle_files=False), image_size)
        names = (_target_names(label_key, int(tf.size(next(iter(examples))[1])))
                 if self.numeric else builder.info.features[label_key].names)
        return SplitExamples(examples, names, [])

    def _examples(self, dataset: tf.data.Dataset, image_size: int) -> tf.data.Dataset:
        dataset = dataset.map(_resizer(image_size), num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.map(_as_target_vector) if self.numeric else dataset


class TfdsClasses(TfdsSource):
    """A TFDS dataset with a `ClassLabel`: the class names come from TFDS."""


class TfdsNumbers(TfdsSource):
    """A TFDS dataset with a numeric label (scalar or vector), as float32 target vectors."""

    numeric = True


def _builder(data):
    try:
        builder = tfds.builder(data.dataset, data_dir=data.data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ConfigError("dataset", f"TFDS has no dataset {data.dataset!r} "
                          f"({str(error).splitlines()[0]})", "Pass a name listed by "
                          "`tfds.list_builders()` (e.g. cifar10) or use --image_dir.") from None
    try:
        builder.download_and_prepare()
    except Exception as error:  # Network and preparation failures come in many types.
        raise ConfigError("dataset", f"could not download or prepare TFDS dataset "
                          f"{data.dataset!r} ({type(error).__name__}: {error})",
                          "Without network access pass --data_dir=<folder holding a prepared "
                          "copy>, or train from a folder with --image_dir.") from None
    return builder


def _supervised_keys(builder, name: str, numeric: bool) -> tuple[str, str]:
    keys = builder.info.supervised_keys
    label = builder.info.features[keys[1]] if keys else None
    if numeric:
        usable = (isinstance(label, tfds.features.Tensor)  # ClassLabel is a Tensor too.
                  and not isinstance(label, tfds.features.ClassLabel) and len(label.shape) <= 1
                  and (label.tf_dtype.is_floating or label.tf_dtype.is_integer))
        if not usable:
            raise ConfigError("task", f"TFDS dataset {name!r} has no (image, numeric label) "
                              "supervised keys for --task=regression", "Pass a dataset whose "
                              "label is a number or a vector of numbers, or a CSV of targets "
                              "beside an --image_dir.")
    elif not isinstance(label, tfds.features.ClassLabel):
        raise ConfigError("dataset", f"TFDS dataset {name!r} has no (image, class label) "
                          "supervised keys", "Pass an image-classification dataset, or "
                          "--task=regression for a numeric label.")
    elif label.num_classes < 2:  # As for a folder: one class is trivially 100% accurate.
        raise ConfigError("dataset", f"TFDS dataset {name!r} has {label.num_classes} class "
                          f"({', '.join(label.names)}); classification needs at least 2",
                          "Pass a dataset with two or more classes.")
    return keys[0], keys[1]


def _require_split(builder, name: str, field: str, split: str) -> None:
    if split.split("[")[0] not in builder.info.splits:
        raise ConfigError(field, f"TFDS dataset {name!r} has no split {split!r}",
                          f"Splits: {', '.join(builder.info.splits)}.")


def _train_validation_splits(builder, data) -> tuple[str, str]:
    for field in ("train_split", "validation_split", "test_split"):
        split = getattr(data, field)
        if split:
            _require_split(builder, data.dataset, field, split)
    if data.validation_split:
        return data.train_split, data.validation_split
    base = data.train_split
    if "[" in base:  # TFDS split strings cannot slice a slice.
        raise ConfigError("train_split", f"cannot carve validation out of the sliced split "
                          f"{base!r}", "Pass --validation_split too.")
    total = builder.info.splits[base].num_examples
    held_out = max(1, round(total * data.validation_fraction))
    if held_out >= total:
        raise ConfigError("validation_fraction", f"--validation_fraction="
                          f"{data.validation_fraction} holds out {held_out} of the {total} "
                          f"examples of {base!r} for validation, which leaves none to train on",
                          "Lower --validation_fraction or pass a --validation_split.")
    return f"{base}[:{total - held_out}]", f"{base}[{total - held_out}:]"


def _train_targets(builder, split: str, image_key: str, label_key: str) -> np.ndarray:
    """The training split's targets, [N, targets], read without decoding a single image."""
    labels = builder.as_dataset(split=split, decoders={image_key: tfds.decode.SkipDecoding()})
    return np.stack(list(labels.map(
        lambda example: _as_target_vector(None, example[label_key])[1]).as_numpy_iterator()))


def _as_target_vector(image, target):
    """A TFDS numeric label as a float32 vector: a scalar becomes [1]."""
    return image, tf.reshape(tf.cast(target, tf.float32), [-1])


def _target_names(label_key: str, count: int) -> list[str]:
    return [label_key] if count == 1 else [f"{label_key}_{i}" for i in range(count)]


def _resizer(image_size: int):
    def resize(image, label):
        image = tf.cast(image, tf.float32)
        if image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        return tf.image.resize(image, (image_size, image_size)), label
    return resize
