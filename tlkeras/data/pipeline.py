"""Batched `tf.data` pipelines from unbatched examples: the one place that caches and batches.

Plain arguments, no config: images, cached backbone features (`tlkeras.training.feature_cache`)
and distillation's teacher outputs all become pipelines here, reusing an existing
`TrainingData`'s batch size, seed, shuffle buffer and options.
"""

import dataclasses
import math

import tensorflow as tf

EPOCH_SEED_STRIDE = 1_000_003  # Distinct shuffle seeds for every (--seed, epoch) pair.


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


def fits_in_memory(count: int, bytes_each: int, budget_mb: int) -> bool:
    """Whether `count` cached items of `bytes_each` stay within --cache_memory_mb."""
    return count * bytes_each <= budget_mb * 2**20


def pipeline_options(deterministic: bool) -> tf.data.Options:
    """Determinism as flagged, and sharding by element (DATA) under multi-worker training.

    DATA, not FILE: an image folder or TFDS split may hold fewer files than there are workers,
    and cached features come from one generator, so each worker keeps every n-th batch instead.
    """
    options = tf.data.Options()
    options.deterministic = deterministic
    options.experimental_distribute.auto_shard_policy = \
        tf.data.experimental.AutoShardPolicy.DATA
    return options


def pipeline(dataset: tf.data.Dataset, batch_size: int, options: tf.data.Options,
             cache_file: str | None) -> tf.data.Dataset:
    """[cache] -> batch -> prefetch, in order: the validation and test pipelines.

    `cache_file`: None for no cache, "" to cache in memory, else a file path prefix.
    """
    if cache_file is not None:
        dataset = dataset.cache(cache_file)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)


def training_data(examples: tf.data.Dataset, size: int | None, batch_size: int, seed: int,
                  shuffle_buffer: int, options: tf.data.Options,
                  cache_file: str | None) -> TrainingData:
    """The training split as `TrainingData`: [cached], shuffled per epoch, batched.

    `cache_file`: None for no cache, "" to cache in memory, else a file path prefix. A size
    that tf.data cannot tell is counted once, because every epoch must have a known length.
    """
    if cache_file is not None:
        examples = examples.cache(cache_file)
    if size is None:
        size = int(examples.reduce(0, lambda count, _: count + 1))
    return TrainingData(examples, size, batch_size, seed, shuffle_buffer, options)
