"""Class folders (--image_dir): `<image_dir>/<split>/<class>/<image>`, one folder per class.

The classes are the training split's subfolders in sorted order, the same layout Keras'
`image_dataset_from_directory` reads; every other split must have exactly these classes. A class
whose every file is unreadable is refused rather than silently dropped.
"""

import os

from tlkeras.data.folder_splits import FolderSource
from tlkeras.data.sources import SplitExamples
from tlkeras.errors import ConfigError
from tlkeras.image_files import IMAGE_EXTENSIONS, is_image_file


class ImageFolder(FolderSource):
    """Integer class labels from class subfolders."""

    def labelled_files(self, split_flag: str, names: list[str] | None):
        directory = _split_dir(self.data, split_flag, names)
        names = names or _class_names(directory)
        return _labelled_files(directory, names), names

    def check(self, split_flag: str, readable: list, names: list[str]) -> None:
        directory = os.path.join(self.data.image_dir, getattr(self.data, split_flag))
        found = {label for _, label in readable}
        for label, class_name in enumerate(names):
            if label not in found:
                raise ConfigError("image_dir", f"class folder "
                                  f"{os.path.join(directory, class_name)!r} holds no readable "
                                  "image", "Replace its corrupt files or remove the folder.")

    def load_split(self, split: str, image_size: int) -> SplitExamples:
        """Any folder of class folders; its own classes, which the caller compares."""
        directory = os.path.join(self.data.image_dir, split)
        if not os.path.isdir(directory):
            raise ConfigError("split", f"no folder {directory!r}", "Pass a subfolder of "
                              f"{self.data.image_dir} that holds class folders.")
        names = _class_names(directory)
        return self.split_examples(_labelled_files(directory, names), names, image_size)


def _split_dir(data, split_flag: str, class_names: list[str] | None) -> str:
    """The split's folder; it must exist and, unless `class_names` is None, hold those classes."""
    split = getattr(data, split_flag)
    directory = os.path.join(data.image_dir, split)
    if not os.path.isdir(directory):
        raise ConfigError("image_dir", f"no folder {directory!r} for --{split_flag}={split}",
                          f"Lay images out as {data.image_dir}/{split}/<class>/<image>, or "
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


def _labelled_files(directory: str, class_names: list[str]) -> list[tuple[str, int]]:
    return [(os.path.join(root, name), label)
            for label, class_name in enumerate(class_names)
            for root, _, names in sorted(os.walk(os.path.join(directory, class_name)))
            for name in sorted(names) if is_image_file(name)]
