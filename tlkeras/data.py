"""Input pipelines: TFDS datasets by name or a folder of class subfolders, as batched `tf.data`.

Every split yields `(image, label)` with `image` a float32 [H, W, 3] RGB tensor in 0-255 at the
model's input size and `label` an integer class id, or for --task=regression a float32 vector of
targets (from `<image_dir>/<split>.csv` or a TFDS numeric label). Preprocessing for the
backbone happens inside the model, so the same raw pixels feed training, evaluation and the
exported SavedModel.
"""

import csv
import dataclasses
import logging
import math
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tlkeras.config import Config
from tlkeras.errors import ConfigError
from tlkeras.image_files import IMAGE_EXTENSIONS, is_image_file
from tlkeras.imaging import decode_and_resize

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainingData:
    """The training split as reproducible epochs: epoch e's order depends only on --seed and e.

    `tf.data`'s own `reshuffle_each_iteration` draws each epoch's order from a generator that
    starts over in a new process, so a resumed run would repeat the first epoch's order. Here
    `epochs(first, last)` shuffles each epoch with a seed made from --seed and the epoch number,
    so a run resumed at epoch e sees exactly the batches an uninterrupted run sees.
    """

    examples: tf.data.Dataset  # Unbatched and, where configured, cached.
    size: int
    batch_size: int
    seed: int
    shuffle_buffer: int
    options: tf.data.Options

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def in_order(self) -> tf.data.Dataset:
        """One pass of batches in a fixed order, e.g. to compute features once."""
        return self.examples.batch(self.batch_size).prefetch(tf.data.AUTOTUNE) \
            .with_options(self.options)

    def epochs(self, first: int, last: int) -> tf.data.Dataset:
        """Batches of epochs first..last-1, one after the other; pass `steps_per_epoch` to fit.

        Each epoch is its own shuffle with a Python-int seed, concatenated (as a balanced tree,
        so the nesting stays shallow). Not `range().flat_map()` with a tensor seed: TensorFlow's
        `get_seed` then fails in graph mode when the global seed is 0 (`--seed=0`), comparing
        a symbolic seed with 0.
        """
        def concatenated(epochs: range) -> tf.data.Dataset:
            if len(epochs) == 1:
                seed = self.seed * EPOCH_SEED_STRIDE + epochs[0]
                return self.examples.shuffle(self.shuffle_buffer, seed=seed) \
                    .batch(self.batch_size)
            middle = len(epochs) // 2
            return concatenated(epochs[:middle]).concatenate(concatenated(epochs[middle:]))

        return concatenated(range(first, last)).prefetch(tf.data.AUTOTUNE) \
            .with_options(self.options)


EPOCH_SEED_STRIDE = 1_000_003  # Distinct shuffle seeds for every (--seed, epoch) pair.


@dataclasses.dataclass
class Targets:
    """Regression targets: names in output order, and the training split's mean and deviation."""

    names: list[str]
    mean: np.ndarray
    std: np.ndarray  # A constant target gets 1, so normalising never divides by zero.

    @classmethod
    def fit(cls, names: list[str], values: np.ndarray) -> "Targets":
        std = values.std(axis=0)
        return cls(names, values.mean(axis=0), np.where(std > 0, std, 1.0))


@dataclasses.dataclass
class DataSplits:
    """Training epochs, batched validation/test pipelines, class names in label order, sizes.

    For --task=regression `class_names` is empty and `targets` describes the targets.
    """

    train: TrainingData
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    class_names: list[str]
    sizes: dict[str, int | None]  # Examples per split; None where tf.data cannot tell.
    images_cached: bool  # Decoded, resized images kept in memory after the first epoch.
    batch_size: int  # Global batch size.
    skipped_files: list[str]  # Image-folder files that do not decode, left out of every split.
    targets: Targets | None = None

    @property
    def output_names(self) -> list[str]:
        """What the model's outputs are: class names, or regression target names."""
        return self.targets.names if self.targets else self.class_names


def load(config: Config, image_size: int, batch_size: int | None = None) -> DataSplits:
    """Loads the configured data source and builds its pipelines.

    `batch_size` is the global batch (per-replica --batch_size x replicas); default --batch_size.
    """
    batch_size = batch_size or config.batch_size
    regression = config.task == "regression"
    load_source = ((_load_regression_folder if regression else _load_image_folder)
                   if config.image_dir else _load_tfds)
    train, validation, test, names, skipped, train_targets = load_source(config, image_size)
    class_names, targets = ([], Targets.fit(names, train_targets)) if regression else (names, None)
    splits = {"train": train, "validation": validation, "test": test}
    sizes = {name: _size(dataset) for name, dataset in splits.items() if dataset is not None}
    known = None not in sizes.values()
    cache = known and fits_in_memory(sum(sizes.values()), image_size * image_size * 3 * 4,
                                     config.cache_memory_mb)  # float32 RGB after resizing
    in_memory = "" if cache else None
    log.info("Data: %s examples per split, %s; decoded images %s.", sizes,
             f"targets {names}" if regression else f"{len(names)} classes",
             "cached in memory" if cache else
             f"decoded every epoch (over --cache_memory_mb={config.cache_memory_mb} or size "
             "unknown)")
    return DataSplits(
        train=training_data(train, sizes["train"], config, batch_size, in_memory),
        validation=pipeline(validation, config, batch_size, in_memory),
        test=None if test is None else pipeline(test, config, batch_size, in_memory),
        class_names=class_names, sizes=sizes, images_cached=cache, batch_size=batch_size,
        skipped_files=skipped, targets=targets)


def _size(dataset: tf.data.Dataset) -> int | None:
    size = int(dataset.cardinality())
    return size if size >= 0 else None


def training_data(examples: tf.data.Dataset, size: int | None, config: Config, batch_size: int,
                  cache_file: str | None) -> TrainingData:
    """The training split as `TrainingData`: [cached], shuffled per epoch, batched.

    `cache_file`: None for no cache, "" to cache in memory, else a file path prefix. A size
    that tf.data cannot tell is counted once, because every epoch must have a known length.
    """
    if cache_file is not None:
        examples = examples.cache(cache_file)
    if size is None:
        size = int(examples.reduce(0, lambda count, _: count + 1))
    return TrainingData(examples, size, batch_size, config.seed, config.shuffle_buffer,
                        pipeline_options(config))


def fits_in_memory(count: int, bytes_each: int, budget_mb: int) -> bool:
    """Whether `count` cached items of `bytes_each` stay within --cache_memory_mb."""
    return count * bytes_each <= budget_mb * 2**20


def pipeline(dataset: tf.data.Dataset, config: Config, batch_size: int,
             cache_file: str | None) -> tf.data.Dataset:
    """[cache] -> batch -> prefetch, in order: the validation and test pipelines.

    `cache_file`: None for no cache, "" to cache in memory, else a file path prefix.
    """
    if cache_file is not None:
        dataset = dataset.cache(cache_file)
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return dataset.with_options(pipeline_options(config))


def pipeline_options(config: Config) -> tf.data.Options:
    """Determinism as flagged, and sharding by element (DATA) under multi-worker training.

    DATA, not FILE: an image folder or TFDS split may hold fewer files than there are workers,
    and cached features come from one generator, so each worker keeps every n-th batch instead.
    """
    options = tf.data.Options()
    options.deterministic = config.deterministic
    options.experimental_distribute.auto_shard_policy = \
        tf.data.experimental.AutoShardPolicy.DATA
    return options


def load_split(config: Config, split: str, image_size: int):
    """One split alone, batched in order (e.g. to evaluate an export on it).

    Returns (batches, class names in label order, skipped unreadable files). `--split` names it.
    """
    if config.image_dir:
        directory = os.path.join(config.image_dir, split)
        if not os.path.isdir(directory):
            raise ConfigError("split", f"no folder {directory!r}",
                              f"Pass a subfolder of {config.image_dir} that holds class folders.")
        class_names = _class_names(directory)
        readable, skipped = _split_readable(_labelled_files(directory, class_names))
        examples = _decode_files(readable, image_size)
    else:
        builder = _tfds_builder(config)
        _, label_key = _supervised_keys(builder, config.dataset)
        if split.split("[")[0] not in builder.info.splits:
            raise ConfigError("split", f"TFDS dataset {config.dataset!r} has no split {split!r}",
                              f"Splits: {', '.join(builder.info.splits)}.")
        examples = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False).map(
            _resizer(image_size), num_parallel_calls=tf.data.AUTOTUNE)
        class_names, skipped = builder.info.features[label_key].names, []
    return pipeline(examples, config, config.batch_size, cache_file=None), class_names, skipped


# --- TFDS ---------------------------------------------------------------------------------------

def _load_tfds(config: Config, image_size: int):
    builder = _tfds_builder(config)
    regression = config.task == "regression"
    image_key, label_key = _supervised_keys(builder, config.dataset, regression)
    train_split, validation_split = _tfds_train_validation_splits(builder, config)
    splits = [train_split, validation_split] + ([config.test_split] if config.test_split else [])
    datasets = builder.as_dataset(split=splits, as_supervised=True,
                                  read_config=tfds.ReadConfig(shuffle_seed=config.seed),
                                  shuffle_files=False)
    resize = _resizer(image_size)
    datasets = [ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE) for ds in datasets]
    if regression:
        datasets = [dataset.map(_as_target_vector) for dataset in datasets]
        train_targets = np.stack(list(builder.as_dataset(
            split=train_split, decoders={image_key: tfds.decode.SkipDecoding()}).map(
            lambda example: _as_target_vector(None, example[label_key])[1]).as_numpy_iterator()))
        names = _tfds_target_names(label_key, train_targets.shape[1])
    else:
        train_targets, names = None, builder.info.features[label_key].names
    test = datasets[2] if config.test_split else None
    return datasets[0], datasets[1], test, names, [], train_targets


def _as_target_vector(image, target):
    """A TFDS numeric label as a float32 vector: a scalar becomes [1]."""
    return image, tf.reshape(tf.cast(target, tf.float32), [-1])


def _tfds_target_names(label_key: str, count: int) -> list[str]:
    return [label_key] if count == 1 else [f"{label_key}_{i}" for i in range(count)]


def _tfds_builder(config: Config):
    try:
        builder = tfds.builder(config.dataset, data_dir=config.data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ConfigError("dataset", f"TFDS has no dataset {config.dataset!r} "
                          f"({str(error).splitlines()[0]})", "Pass a name listed by "
                          "`tfds.list_builders()` (e.g. cifar10) or use --image_dir.") from None
    try:
        builder.download_and_prepare()
    except Exception as error:  # Network and preparation failures come in many types.
        raise ConfigError("dataset", f"could not download or prepare TFDS dataset "
                          f"{config.dataset!r} ({type(error).__name__}: {error})",
                          "Without network access pass --data_dir=<folder holding a prepared "
                          "copy>, or train from a folder with --image_dir.") from None
    return builder


def _supervised_keys(builder, name: str, regression: bool = False) -> tuple[str, str]:
    keys = builder.info.supervised_keys
    label = builder.info.features[keys[1]] if keys else None
    if regression:
        numeric = (isinstance(label, tfds.features.Tensor)  # ClassLabel is a Tensor too.
                   and not isinstance(label, tfds.features.ClassLabel) and len(label.shape) <= 1
                   and (label.tf_dtype.is_floating or label.tf_dtype.is_integer))
        if not numeric:
            raise ConfigError("task", f"TFDS dataset {name!r} has no (image, numeric label) "
                              "supervised keys for --task=regression", "Pass a dataset whose "
                              "label is a number or a vector of numbers, or a CSV of targets "
                              "beside an --image_dir.")
    elif not isinstance(label, tfds.features.ClassLabel):
        raise ConfigError("dataset", f"TFDS dataset {name!r} has no (image, class label) "
                          "supervised keys", "Pass an image-classification dataset, or "
                          "--task=regression for a numeric label.")
    return keys[0], keys[1]


def _tfds_train_validation_splits(builder, config: Config) -> tuple[str, str]:
    for flag in ("train_split", "validation_split", "test_split"):
        split = getattr(config, flag)
        if split and split.split("[")[0] not in builder.info.splits:
            raise ConfigError(flag, f"TFDS dataset {config.dataset!r} has no split {split!r}",
                              f"Splits: {', '.join(builder.info.splits)}.")
    if config.validation_split:
        return config.train_split, config.validation_split
    base = config.train_split
    if "[" in base:  # TFDS split strings cannot slice a slice.
        raise ConfigError("train_split", f"cannot carve validation out of the sliced split "
                          f"{base!r}", "Pass --validation_split too.")
    total = builder.info.splits[base].num_examples
    held_out = max(1, round(total * config.validation_fraction))
    return f"{base}[:{total - held_out}]", f"{base}[{total - held_out}:]"


def _resizer(image_size: int):
    def resize(image, label):
        image = tf.cast(image, tf.float32)
        if image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        return tf.image.resize(image, (image_size, image_size)), label
    return resize


# --- Image folders ------------------------------------------------------------------------------

def _load_image_folder(config: Config, image_size: int):
    """Reads `<image_dir>/<split>/<class>/*`; files that do not decode are skipped and listed."""
    class_names = _class_names(_split_dir(config, "train_split"))

    def labelled_files(split_flag):
        known = None if split_flag == "train_split" else class_names
        return _labelled_files(_split_dir(config, split_flag, known), class_names)

    def check(split_flag, readable):
        directory = os.path.join(config.image_dir, getattr(config, split_flag))
        _require_every_class(directory, class_names, readable)

    datasets, skipped, _ = _folder_splits(config, image_size, labelled_files, check)
    return (*datasets, class_names, skipped, None)


def _load_regression_folder(config: Config, image_size: int):
    """Reads `<image_dir>/<split>.csv` (path,<target>...) for the images of each split."""
    target_names = []

    def labelled_files(split_flag):
        files, names = _read_targets_csv(config, split_flag)
        if target_names and names != target_names:
            raise ConfigError("image_dir", f"the --{split_flag} CSV has targets {names}, the "
                              f"training CSV {target_names}", "Give every split's CSV the same "
                              "header.")
        target_names[:] = names
        return files

    def check(split_flag, readable):
        if not readable:
            raise ConfigError("image_dir", f"no image listed in the --{split_flag} CSV "
                              "decodes", "Check the paths in its first column.")

    datasets, skipped, train = _folder_splits(config, image_size, labelled_files, check)
    return (*datasets, target_names, skipped, np.stack([target for _, target in train]))


def _folder_splits(config: Config, image_size: int, labelled_files, check):
    """Train, validation and test of a folder, from `labelled_files(split_flag)`.

    Every listed file is decoded once; those that do not decode are skipped and listed, then
    `check(split_flag, readable files)` may refuse the split. Each split is shuffled once with
    the seed: a carved validation split gets every class, and the training shuffle buffer need
    not hold the whole split to mix classes. Returns ([train, validation, test] datasets,
    skipped paths, the (path, label) list of the training split).
    """
    skipped = []

    def files(split_flag):
        readable, unreadable = _split_readable(labelled_files(split_flag))
        skipped.extend(unreadable)
        check(split_flag, readable)
        order = np.random.default_rng(config.seed).permutation(len(readable))
        return [readable[i] for i in order]

    train = files("train_split")
    if config.validation_split:
        validation = files("validation_split")
    else:
        held_out = max(1, round(len(train) * config.validation_fraction))
        train, validation = train[:-held_out], train[-held_out:]
    test = files("test_split") if config.test_split else None
    if skipped:
        log.warning("Skipped %d file(s) that do not decode as images (or are missing): %s%s",
                    len(skipped), ", ".join(skipped[:20]), " ..." if len(skipped) > 20 else "")
    datasets = [None if split is None else _decode_files(split, image_size)
                for split in (train, validation, test)]
    return datasets, skipped, train


def _read_targets_csv(config: Config, split_flag: str):
    """([(image path, float32 targets)], target names) from `<image_dir>/<split>.csv`."""
    split = getattr(config, split_flag)
    path = os.path.join(config.image_dir, f"{split}.csv")
    fix = (f"Write {path} with a header `path,<target name>[,<target name>...]` and one row "
           f"per image: its path relative to {os.path.join(config.image_dir, split)}/, then "
           "its target values.")
    if not os.path.isfile(path):
        raise ConfigError(split_flag, f"--task=regression needs the targets file {path!r}", fix)
    with open(path, newline="") as file:
        rows = [row for row in csv.reader(file) if row]
    if len(rows) < 2 or len(rows[0]) < 2 or rows[0][0].strip() != "path":
        raise ConfigError(split_flag, f"{path!r} has no `path,<target>...` header and rows", fix)
    names = [name.strip() for name in rows[0][1:]]
    labelled = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            values = np.array([float(value) for value in row[1:]], np.float32)
        except ValueError:
            values = None
        if values is None or len(values) != len(names) or not np.isfinite(values).all():
            raise ConfigError(split_flag, f"{path}, line {line}: expected an image path and "
                              f"{len(names)} finite number(s), got {row}", fix)
        labelled.append((os.path.join(config.image_dir, split, row[0].strip()), values))
    return labelled, names


def _labelled_files(directory: str, class_names: list[str]) -> list[tuple[str, int]]:
    return [(os.path.join(root, name), label)
            for label, class_name in enumerate(class_names)
            for root, _, names in sorted(os.walk(os.path.join(directory, class_name)))
            for name in sorted(names) if is_image_file(name)]


def _split_readable(files: list[tuple[str, int]]):
    """(readable files, unreadable paths): every file is decoded once, in parallel, by tf.data.

    A decoding error drops that element (`ignore_errors`); the indices that come through are
    the readable files. Corrupt, truncated and non-image files never reach training.
    """
    def decodes(index, path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return index, tf.shape(image)  # An output of the decode, else tf.data prunes it.

    paths = [path for path, _ in files]  # Never empty: _class_names found an image per class.
    indices = tf.data.Dataset.from_tensor_slices((tf.range(len(files)), paths)).map(
        decodes, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    good = {int(index) for index, _ in indices}
    return ([file for i, file in enumerate(files) if i in good],
            [path for i, (path, _) in enumerate(files) if i not in good])


def _require_every_class(directory: str, class_names: list[str], files) -> None:
    found = {label for _, label in files}
    for label, class_name in enumerate(class_names):
        if label not in found:
            raise ConfigError("image_dir", f"class folder "
                              f"{os.path.join(directory, class_name)!r} holds no readable image",
                              "Replace its corrupt files or remove the folder.")


def _decode_files(files: list[tuple[str, int]], image_size: int) -> tf.data.Dataset:
    paths, labels = zip(*files, strict=True)
    dataset = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
    return dataset.map(
        lambda path, label: (decode_and_resize(tf.io.read_file(path), image_size, image_size),
                             label), num_parallel_calls=tf.data.AUTOTUNE)


def _split_dir(config: Config, split_flag: str, class_names: list | None = None) -> str:
    split = getattr(config, split_flag)
    directory = os.path.join(config.image_dir, split)
    if not os.path.isdir(directory):
        raise ConfigError("image_dir", f"no folder {directory!r} for --{split_flag}={split}",
                          f"Lay images out as {config.image_dir}/{split}/<class>/<image>, or "
                          f"change --{split_flag} (an empty --validation_split or --test_split "
                          "means: carve validation from train / skip the test).")
    if class_names is not None and _class_names(directory) != class_names:
        raise ConfigError("image_dir", f"the classes in {directory!r} "
                          f"({_class_names(directory)}) differ from the training classes "
                          f"({class_names})", "Give every split the same class subfolders.")
    return directory


def _class_names(directory: str) -> list[str]:
    """Sorted class subfolder names; fails on a folder without classes or a class without images."""
    names = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    if not names:
        raise ConfigError("image_dir", f"{directory!r} has no class subfolders",
                          "Put each class's images in its own subfolder: "
                          f"{directory}/<class>/<image>.")
    for name in names:
        if not _contains_image(os.path.join(directory, name)):
            raise ConfigError("image_dir", f"class folder {os.path.join(directory, name)!r} "
                              f"holds no image ({', '.join(IMAGE_EXTENSIONS)})",
                              "Add images to it or remove the folder.")
    return names


def _contains_image(directory: str) -> bool:
    return any(is_image_file(file) for _, _, files in os.walk(directory) for file in files)
