"""What every folder reader shares: decode each listed file once, skip, order and carve splits.

A folder reader (class folders, a CSV of targets) only lists `(image path, label)` pairs per
split and says what it refuses. The rest is here, once: every listed file is decoded once, in
parallel, and those that do not decode are skipped and listed, so corrupt, truncated and non-image
files never reach training; so are files whose name is not UTF-8, which TensorFlow cannot open.
Each split is shuffled once with the seed, so a carved validation split gets every class and the
training shuffle buffer need not hold the whole split to mix them; a carve that would leave a
class without a training image is refused. A reader may instead carve every split from one
folder (`carved_files`, a flat folder of class folders): then each carved split is read here.
"""

import abc
import logging

import numpy as np
import tensorflow as tf

from tlkeras.data.decode import decode_and_resize, decode_within_budget, max_pixels
from tlkeras.data.sources import Source, SourceSplits, SplitExamples, files_fingerprint
from tlkeras.errors import ConfigError
from tlkeras.image_files import printable_path, utf8_name

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

    def without_files(self, files: list, names: list[str]) -> list[str]:
        """The outputs that `files` leave without an example (classes); none for targets."""
        return []

    def describe_counts(self, files: list, names: list[str]) -> str:
        """How `files` spread over the outputs, for an error message."""
        return f"{len(files)} image(s)"

    def train_targets(self, train: list) -> np.ndarray | None:
        """`SourceSplits.train_targets` from the training split's (path, label) pairs."""
        return None

    def carved_files(self) -> tuple[dict[str, list], list[str]] | None:
        """({"train", "validation", "test": [(image path, label)]}, output names) when every
        split is carved from one folder (`tlkeras.data.carve`); None when splits are folders."""
        return None

    def load(self, image_size: int) -> SourceSplits:
        skipped = []
        carved = self.carved_files()
        train, validation, test, names = (self._split_folders(skipped) if carved is None
                                          else self._readable_carve(*carved, skipped))
        if skipped:
            log.warning("Skipped %d file(s) that do not decode as images (missing, corrupt, "
                        "over --max_image_megapixels, or named in other bytes than UTF-8): %s%s",
                        len(skipped), ", ".join(skipped[:20]), " ..." if len(skipped) > 20 else "")
        budget = self.pixel_budget
        return SourceSplits(decode_files(train, image_size, budget),
                            decode_files(validation, image_size, budget),
                            None if test is None else decode_files(test, image_size, budget), names,
                            skipped, self.train_targets(train),
                            {"train": files_fingerprint(train),
                             "validation": files_fingerprint(validation)})

    def _split_folders(self, skipped: list):
        """(train, validation, test or None, names), each split read from its own folder or CSV
        (validation carved from train without --validation_split)."""
        train, names = self._readable_in_order("train_split", None, skipped)
        if self.data.validation_split:
            validation, _ = self._readable_in_order("validation_split", names, skipped)
        else:
            train, validation = self._carve_validation(train, names)
        test = (self._readable_in_order("test_split", names, skipped)[0]
                if self.data.test_split else None)
        return train, validation, test, names

    def _readable_carve(self, carved: dict[str, list], names: list[str], skipped: list):
        """(train, validation, test or None, names) of a carve: each split's readable files in
        the seeded order. Refused when a class has no readable training image or a split is
        left empty."""
        splits = {}
        for split, files in carved.items():
            readable, unreadable = split_readable(files, self.pixel_budget)
            skipped.extend(unreadable)
            splits[split] = self._seeded_order(readable)
        short = self.without_files(splits["train"], names)
        if short:
            raise ConfigError("image_dir", f"class(es) {', '.join(map(repr, short))} in "
                              f"{self.data.image_dir!r} have no readable image among those "
                              "carved for training", "Replace their corrupt files or add "
                              "images to them.")
        self._require_images(splits["validation"], "validation", "validation_fraction")
        if self.data.test_split:
            self._require_images(splits["test"], "test", "test_fraction")
        return (splits["train"], splits["validation"],
                splits["test"] if self.data.test_split else None, names)

    def _require_images(self, files: list, split: str, field: str) -> None:
        if files:
            return
        raise ConfigError(field, f"the {split} split carved from {self.data.image_dir!r} has no "
                          f"readable image (a class gives it one from "
                          f"{2 if split == 'validation' else 3} images on)", "Add images" +
                          (", or pass an empty --test_split to skip the test." if split == "test"
                           else "."))

    def split_examples(self, files: list, names: list[str], image_size: int) -> SplitExamples:
        """`load_split`'s result for one split's listed files: readable ones, in listed order."""
        readable, skipped = split_readable(files, self.pixel_budget)
        return SplitExamples(decode_files(readable, image_size, self.pixel_budget), names, skipped)

    @property
    def pixel_budget(self) -> int:
        """--max_image_megapixels in pixels: a larger image is skipped like an unreadable one."""
        return max_pixels(self.data.max_image_megapixels)

    def _carve_validation(self, train: list, names: list[str]) -> tuple[list, list]:
        """(train, validation): the last --validation_fraction of the seeded order (at least
        one image). Refused when that leaves a class (or the split) with no training image:
        --validation_fraction=0.9 with one image per class tracebacked on an empty split."""
        fraction = self.data.validation_fraction
        held_out = max(1, round(len(train) * fraction))
        kept, validation = train[:-held_out], train[-held_out:]
        short = self.without_files(kept, names)
        if kept and not short:
            return kept, validation
        left = (f"class(es) {', '.join(map(repr, short))} with no training image" if short
                else "no training image")
        raise ConfigError("validation_fraction", f"--validation_fraction={fraction} holds out "
                          f"{held_out} of the {len(train)} readable training images (at least "
                          "1, drawn at random from the whole split) for validation, which leaves "
                          f"{left}; the training split has {self.describe_counts(train, names)}",
                          "Every class needs at least 1 training image after validation is "
                          "held out: lower --validation_fraction, add images to the smallest "
                          "classes, or give validation its own folder with --validation_split.")

    def _readable_in_order(self, split_flag: str, names: list[str] | None, skipped: list):
        """(readable files in the seeded order, output names); unreadable paths go to `skipped`."""
        files, names = self.labelled_files(split_flag, names)
        readable, unreadable = split_readable(files, self.pixel_budget)
        skipped.extend(unreadable)
        self.check(split_flag, readable, names)
        return self._seeded_order(readable), names

    def _seeded_order(self, files: list) -> list:
        """`files` shuffled once with the seed, so the shuffle buffer need not mix classes."""
        order = np.random.default_rng(self.seed).permutation(len(files))
        return [files[i] for i in order]


def split_readable(files: list[tuple[str, object]], pixel_budget: int) -> tuple[list, list[str]]:
    """(readable files, unreadable paths as printable text): each file is decoded once.

    A file whose name is not UTF-8 is unreadable too: TensorFlow strings cannot hold it, and
    one such name used to abort the whole run.
    """
    named = {i: path for i, (path, _) in enumerate(files) if utf8_name(path)}
    good = _decodable(named, pixel_budget)
    return ([file for i, file in enumerate(files) if i in good],
            [printable_path(path) for i, (path, _) in enumerate(files) if i not in good])


def _decodable(paths: dict[int, str], pixel_budget: int) -> set[int]:
    """The keys of `paths` whose files decode within `pixel_budget`, by tf.data in parallel.

    A decoding error drops that element (`ignore_errors`); the indices that come through are
    the readable files.
    """
    def decodes(index, path):
        image = decode_within_budget(tf.io.read_file(path), pixel_budget)
        return index, tf.shape(image)  # An output of the decode, else tf.data prunes it.

    if not paths:
        return set()
    indices = tf.data.Dataset.from_tensor_slices(
        (tf.constant(list(paths), tf.int32), list(paths.values()))).map(
        decodes, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    return {int(index) for index, _ in indices}


def decode_files(files: list[tuple[str, object]], image_size: int,
                 pixel_budget: int) -> tf.data.Dataset:
    """(image, label) examples of readable files, decoded and resized as the SavedModel does."""
    paths, labels = zip(*files, strict=True)
    dataset = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
    return dataset.map(
        lambda path, label: (decode_and_resize(tf.io.read_file(path), image_size, image_size,
                                               pixel_budget), label),
        num_parallel_calls=tf.data.AUTOTUNE)
