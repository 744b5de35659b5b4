"""What every folder reader shares: decode each listed file once, skip, order and carve splits.

A folder reader (class folders, a CSV of targets) only lists `(image path, label)` pairs per
split and says what it refuses. The rest is here, once: every listed file is decoded once, in
parallel, and those that do not decode are skipped and listed, so corrupt, truncated and non-image
files never reach training. Each split is shuffled once with the seed, so a carved validation
split gets every class and the training shuffle buffer need not hold the whole split to mix them.
"""

import abc
import logging

import numpy as np
import tensorflow as tf

from tlkeras.data.decode import decode_and_resize
from tlkeras.data.sources import Source, SourceSplits, SplitExamples, files_fingerprint

log = logging.getLogger(__name__)


class FolderSource(Source):
    """A source under --image_dir whose splits are lists of (image path, label) pairs."""

    @abc.abstractmethod
    def labelled_files(self, split_flag: str, names: list[str] | None):
        """([(image path, label)], output names) of the split named by the field `split_flag`.

        `names`: the training split's output names, which this split must have too; None while
        listing the training split itself.
        """

    @abc.abstractmethod
    def check(self, split_flag: str, readable: list, names: list[str]) -> None:
        """Raises `ConfigError` when the split's readable files cannot be used."""

    def train_targets(self, train: list) -> np.ndarray | None:
        """`SourceSplits.train_targets` from the training split's (path, label) pairs."""
        return None

    def load(self, image_size: int) -> SourceSplits:
        skipped = []
        train, names = self._readable_in_order("train_split", None, skipped)
        if self.data.validation_split:
            validation, _ = self._readable_in_order("validation_split", names, skipped)
        else:
            held_out = max(1, round(len(train) * self.data.validation_fraction))
            train, validation = train[:-held_out], train[-held_out:]
        test = (self._readable_in_order("test_split", names, skipped)[0]
                if self.data.test_split else None)
        if skipped:
            log.warning("Skipped %d file(s) that do not decode as images (or are missing): %s%s",
                        len(skipped), ", ".join(skipped[:20]), " ..." if len(skipped) > 20 else "")
        return SourceSplits(decode_files(train, image_size), decode_files(validation, image_size),
                            None if test is None else decode_files(test, image_size), names,
                            skipped, self.train_targets(train),
                            {"train": files_fingerprint(train),
                             "validation": files_fingerprint(validation)})

    def split_examples(self, files: list, names: list[str], image_size: int) -> SplitExamples:
        """`load_split`'s result for one split's listed files: readable ones, in listed order."""
        readable, skipped = split_readable(files)
        return SplitExamples(decode_files(readable, image_size), names, skipped)

    def _readable_in_order(self, split_flag: str, names: list[str] | None, skipped: list):
        """(readable files in the seeded order, output names); unreadable paths go to `skipped`."""
        files, names = self.labelled_files(split_flag, names)
        readable, unreadable = split_readable(files)
        skipped.extend(unreadable)
        self.check(split_flag, readable, names)
        order = np.random.default_rng(self.seed).permutation(len(readable))
        return [readable[i] for i in order], names


def split_readable(files: list[tuple[str, object]]) -> tuple[list, list[str]]:
    """(readable files, unreadable paths): every file is decoded once, in parallel, by tf.data.

    A decoding error drops that element (`ignore_errors`); the indices that come through are
    the readable files.
    """
    def decodes(index, path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return index, tf.shape(image)  # An output of the decode, else tf.data prunes it.

    paths = [path for path, _ in files]  # Never empty: every reader lists at least one file.
    indices = tf.data.Dataset.from_tensor_slices((tf.range(len(files)), paths)).map(
        decodes, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    good = {int(index) for index, _ in indices}
    return ([file for i, file in enumerate(files) if i in good],
            [path for i, (path, _) in enumerate(files) if i not in good])


def decode_files(files: list[tuple[str, object]], image_size: int) -> tf.data.Dataset:
    """(image, label) examples of readable files, decoded and resized as the SavedModel does."""
    paths, labels = zip(*files, strict=True)
    dataset = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
    return dataset.map(
        lambda path, label: (decode_and_resize(tf.io.read_file(path), image_size, image_size),
                             label), num_parallel_calls=tf.data.AUTOTUNE)
