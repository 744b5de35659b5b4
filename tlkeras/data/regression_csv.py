"""Regression targets from CSVs (--image_dir, --task=regression): `<image_dir>/<split>.csv`.

Each split's CSV has the header `path,<target>...` and one row per image: its path relative to
`<image_dir>/<split>/`, then its target values. A folder needs no class layout, and every split's
CSV must name the same targets. Targets are float32 vectors, in the CSV's units.
"""

import csv
import os

import numpy as np

from tlkeras.data.folder_splits import FolderSource
from tlkeras.data.sources import SplitExamples
from tlkeras.errors import ConfigError


class RegressionCsv(FolderSource):
    """Float32 target vectors from one CSV per split."""

    def labelled_files(self, split_flag: str, names: list[str] | None):
        files, csv_names = _read_targets_csv(self.data.image_dir, getattr(self.data, split_flag),
                                             split_flag)
        if names is not None and csv_names != names:
            raise ConfigError("image_dir", f"the --{split_flag} CSV has targets {csv_names}, "
                              f"the training CSV {names}", "Give every split's CSV the same "
                              "header.")
        return files, csv_names

    def check(self, split_flag: str, readable: list, names: list[str]) -> None:
        if not readable:
            raise ConfigError("image_dir", f"no image listed in the --{split_flag} CSV "
                              "decodes", "Check the paths in its first column.")

    def train_targets(self, train: list) -> np.ndarray:
        return np.stack([target for _, target in train])

    def load_split(self, split: str, image_size: int) -> SplitExamples:
        files, names = _read_targets_csv(self.data.image_dir, split, "split")
        return self.split_examples(files, names, image_size)


def _read_targets_csv(image_dir: str, split: str, field: str):
    """([(image path, float32 targets)], target names) from `<image_dir>/<split>.csv`.

    `field` names the setting that chose the split, in errors.
    """
    path = os.path.join(image_dir, f"{split}.csv")
    fix = (f"Write {path} with a header `path,<target name>[,<target name>...]` and one row "
           f"per image: its path relative to {os.path.join(image_dir, split)}/, then "
           "its target values.")
    if not os.path.isfile(path):
        raise ConfigError(field, f"--task=regression needs the targets file {path!r}", fix)
    with open(path, newline="") as file:
        rows = [row for row in csv.reader(file) if row]
    if len(rows) < 2 or len(rows[0]) < 2 or rows[0][0].strip() != "path":
        raise ConfigError(field, f"{path!r} has no `path,<target>...` header and rows", fix)
    names = [name.strip() for name in rows[0][1:]]
    labelled = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            values = np.array([float(value) for value in row[1:]], np.float32)
        except ValueError:
            values = None
        if values is None or len(values) != len(names) or not np.isfinite(values).all():
            raise ConfigError(field, f"{path}, line {line}: expected an image path and "
                              f"{len(names)} finite number(s), got {row}", fix)
        labelled.append((os.path.join(image_dir, split, row[0].strip()), values))
    return labelled, names
