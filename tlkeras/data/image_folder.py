"""Class folders (--image_dir): `<image_dir>/<split>/<class>/<image>`, one folder per class.

The classes are the training split's subfolders in sorted order, the same layout Keras'
`image_dataset_from_directory` reads; every other split must have exactly these classes. A flat
`<image_dir>/<class>/<image>` (no folder for any named split, and subfolders holding images) is
carved into train, validation and test by `tlkeras.data.carve`, per class and seeded. As in
Keras, a class holds every image below its folder, nested subfolders included, and symbolic
links to subfolders inside a class are not followed. A class whose every file is unreadable is
refused rather than silently dropped, and so are class folders that would give one image two
classes: a symbolic link back to the split folder or above it (it became a class holding every
image), a symbolic-link loop, or two class folders that are the same folder. Training needs at
least two classes: with one, accuracy is trivially 1.
"""

import itertools
import os

from tlkeras.data.carve import SPLITS, carve
from tlkeras.data.folder_splits import FolderSource
from tlkeras.data.sources import SplitExamples
from tlkeras.errors import ConfigError
from tlkeras.image_files import IMAGE_EXTENSIONS, is_image_file, printable_path, utf8_name


class ImageFolder(FolderSource):
    """Integer class labels from class subfolders."""

    def carved_files(self):
        if not flat_layout(self.data):
            return None
        if self.data.validation_split:
            raise ConfigError("validation_split", f"there is no folder {self.data.image_dir}/"
                              f"{self.data.validation_split}: {self.data.image_dir!r} is one "
                              "folder of class folders, carved into train, validation and test",
                              "Leave --validation_split empty (validation is carved by "
                              "--validation_fraction), or lay the images out as "
                              "<image_dir>/<split>/<class>/<image>.")
        names = _class_names(self.data.image_dir)
        _require_two_classes(self.data.image_dir, names)
        test_fraction = self.data.test_fraction if self.data.test_split else None
        return carve(_labelled_files(self.data.image_dir, names), names, self.seed,
                     self.data.validation_fraction, test_fraction), names

    def labelled_files(self, split_flag: str, names: list[str] | None):
        directory = _split_dir(self.data, split_flag, names)
        if names is None:
            names = _class_names(directory)
            _require_two_classes(directory, names)
        return _labelled_files(directory, names), names

    def check(self, split_flag: str, readable: list, names: list[str]) -> None:
        directory = os.path.join(self.data.image_dir, getattr(self.data, split_flag))
        for class_name in self.without_files(readable, names):
            raise ConfigError("image_dir", f"class folder "
                              f"{os.path.join(directory, class_name)!r} holds no readable "
                              "image", "Replace its corrupt files or remove the folder.")

    def without_files(self, files: list, names: list[str]) -> list[str]:
        found = {label for _, label in files}
        return [name for label, name in enumerate(names) if label not in found]

    def describe_counts(self, files: list, names: list[str]) -> str:
        counts = [0] * len(names)
        for _, label in files:
            counts[label] += 1
        fewest, most = min(counts), max(counts)
        spread = f"{fewest}" if fewest == most else f"{fewest} to {most}"
        return f"{len(names)} classes with {spread} image(s) each"

    def load_split(self, split: str, image_size: int) -> SplitExamples:
        """Any folder of class folders; its own classes, which the caller compares. In a flat
        folder without that subfolder, one of the carved splits, carved as training carved it
        with the same flags."""
        directory = os.path.join(self.data.image_dir, split)
        if not os.path.isdir(directory) and flat_layout(self.data):
            return self._carved_split(split, image_size)
        if not os.path.isdir(directory):
            raise ConfigError("split", f"no folder {directory!r}", "Pass a subfolder of "
                              f"{self.data.image_dir} that holds class folders.")
        names = _class_names(directory)
        return self.split_examples(_labelled_files(directory, names), names, image_size)

    def _carved_split(self, split: str, image_size: int) -> SplitExamples:
        if split not in SPLITS:
            raise ConfigError("split", f"{self.data.image_dir!r} is one folder of class "
                              f"folders, carved into {', '.join(SPLITS)}; there is no split "
                              f"{split!r}", f"Pass --split={' or --split='.join(SPLITS)}, with "
                              "the --seed, --validation_fraction and --test_fraction of the "
                              "training run.")
        carved, names = self.carved_files()
        if not carved[split]:
            raise ConfigError("split", f"the {split} split carved from "
                              f"{self.data.image_dir!r} holds no image", "Evaluate another "
                              "split.")
        return self.split_examples(carved[split], names, image_size)


def flat_layout(data) -> bool:
    """Whether --image_dir is one flat folder of class folders: it has no folder for any split
    that the flags name, and some subfolder holds images. A missing split folder beside other
    split folders stays the error it was."""
    root = data.image_dir
    if not os.path.isdir(root) or any(
            os.path.isdir(os.path.join(root, split))
            for split in (data.train_split, data.validation_split, data.test_split) if split):
        return False
    return any(_safe_is_dir(entry) and _contains_image(entry.path) for entry in os.scandir(root))


def _safe_is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # A link loop: `_class_names` names it if the folder is read as flat.
        return False


def _split_dir(data, split_flag: str, class_names: list[str] | None) -> str:
    """The split's folder; it must exist and, unless `class_names` is None, hold those classes."""
    split = getattr(data, split_flag)
    directory = os.path.join(data.image_dir, split)
    if not os.path.isdir(directory):
        raise ConfigError("image_dir", f"no folder {directory!r} for --{split_flag}={split}",
                          f"Lay images out as {data.image_dir}/{split}/<class>/<image>, or "
                          f"as {data.image_dir}/<class>/<image> without split folders (carved "
                          "by --validation_fraction and --test_fraction), or change "
                          f"--{split_flag} (an empty --validation_split or --test_split means: "
                          "carve validation from train / skip the test).")
    if class_names is not None and _class_names(directory) != class_names:
        raise ConfigError("image_dir", f"the classes in {directory!r} "
                          f"({_class_names(directory)}) differ from the training classes "
                          f"({class_names})", "Give every split the same class subfolders.")
    return directory


def _require_two_classes(directory: str, names: list[str]) -> None:
    """One class trained, exported and reported accuracy 1.0 (and 0.0000 in the summary)."""
    if len(names) < 2:
        raise ConfigError("image_dir", f"{directory!r} has one class folder ({names[0]!r}); "
                          "classification needs at least 2 classes", "Add a subfolder per "
                          f"class ({directory}/<class>/<image>), or, for real-valued targets, "
                          "pass --task=regression with a CSV of targets.")


def _class_names(directory: str) -> list[str]:
    """Sorted class subfolder names; fails on a folder without classes, a class without images,
    or class folders that are not distinct folders below the split."""
    names = sorted(entry.name for entry in os.scandir(directory) if _is_class_folder(entry))
    if not names:
        raise ConfigError("image_dir", f"{directory!r} has no class subfolders",
                          "Put each class's images in its own subfolder: "
                          f"{directory}/<class>/<image>.")
    _check_distinct(directory, names)
    for name in names:
        if not _contains_image(os.path.join(directory, name)):
            raise ConfigError("image_dir", f"class folder {os.path.join(directory, name)!r} "
                              f"holds no image ({', '.join(IMAGE_EXTENSIONS)})",
                              "Add images to it or remove the folder.")
    return names


def _is_class_folder(entry: os.DirEntry) -> bool:
    """Whether `entry` is a folder (or a link to one); refuses a link loop and a class name
    that is not UTF-8 (it could not be written to labels.txt or the SavedModel)."""
    try:
        is_dir = entry.is_dir()
    except OSError as error:  # ELOOP: the link resolves to itself.
        raise ConfigError("image_dir", f"'{printable_path(entry.path)}' is a symbolic-link "
                          f"loop ({error.strerror})", "Remove the link or point it at a "
                          "folder of that class's images.") from None
    if is_dir and not utf8_name(entry.name):
        raise ConfigError("image_dir", f"class folder '{printable_path(entry.path)}' has a "
                          "name that is not UTF-8", "Rename it in UTF-8 (e.g. `convmv -f "
                          "latin1 -t utf-8`).")
    return is_dir


def _check_distinct(directory: str, names: list[str]) -> None:
    """Refuses class folders that resolve to the split folder or above it (`train/Loop ->
    ../train` became a class holding every image), or to the same or nested folders."""
    root = os.path.realpath(directory)
    real = {name: os.path.realpath(os.path.join(directory, name)) for name in names}
    for name, target in real.items():
        if _within(root, target):
            raise ConfigError("image_dir", f"class folder {os.path.join(directory, name)!r} "
                              f"is a symbolic link to {target!r}, which holds the split folder "
                              "itself, so the class would hold every image", "Remove the link "
                              "or replace it with a folder of that class's images.")
    by_path = sorted(real.items(), key=lambda item: _parts(item[1]))
    for (outer, outer_path), (inner, inner_path) in itertools.pairwise(by_path):
        if _within(inner_path, outer_path):  # Sorted by parts, a nested folder follows.
            how = (f"both are {outer_path!r}" if inner_path == outer_path
                   else f"{inner_path!r} is inside {outer_path!r}")
            raise ConfigError("image_dir", f"class folders {outer!r} and {inner!r} in "
                              f"{directory!r} hold the same images ({how}, through a symbolic "
                              "link)", "Give each class its own folder: remove the link or "
                              "copy the images.")


def _within(path: str, folder: str) -> bool:
    """Whether resolved `path` is `folder` or below it."""
    return os.path.commonpath([path, folder]) == folder


def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split(os.sep))


def _contains_image(directory: str) -> bool:
    return any(is_image_file(file) for _, _, files in os.walk(directory) for file in files)


def _labelled_files(directory: str, class_names: list[str]) -> list[tuple[str, int]]:
    """Every image below each class folder, nested subfolders included (as Keras does)."""
    return [(os.path.join(root, name), label)
            for label, class_name in enumerate(class_names)
            for root, _, names in sorted(os.walk(os.path.join(directory, class_name)))
            for name in sorted(names) if is_image_file(name)]
