"""Regression targets from CSVs (--image_dir, --task=regression): `<image_dir>/<split>.csv`.

Each split's CSV has the header `path,<target>...` and one row per image: its path relative to
`<image_dir>/<split>/`, then its target values. A folder needs no class layout, and every split's
CSV must name the same targets. Targets are float32 vectors, in the CSV's units.

A CSV may come from elsewhere (a colleague, a spreadsheet), so it is read as untrusted text: it
is UTF-8 (with or without the byte-order mark Excel writes), every path must resolve inside the
split's folder (no absolute paths, no `..` or symbolic link out of it: an image from outside
would be trained on and copied into the export's warm-up requests), and each image is listed
once. Errors name the file's real line number, blank lines included.
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
    folder = os.path.join(image_dir, split)
    fix = (f"Write {path} with a header `path,<target name>[,<target name>...]` and one row "
           f"per image: its path relative to {folder}/, then its target values.")
    if not os.path.isfile(path):
        raise ConfigError(field, f"--task=regression needs the targets file {path!r}", fix)
    rows = _numbered_rows(path, field)
    if len(rows) < 2 or len(rows[0][1]) < 2 or rows[0][1][0].strip() != "path":
        raise ConfigError(field, f"{path!r} has no `path,<target>...` header and rows", fix)
    names = [name.strip() for name in rows[0][1][1:]]
    checker = _RowChecker(path, folder, field, fix)
    labelled = [(checker.image(line, row), checker.targets(line, row, len(names)))
                for line, row in rows[1:]]
    checker.check_unique(labelled, [line for line, _ in rows[1:]])
    return labelled, names


def _numbered_rows(path: str, field: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows with the file line each ends on (csv.reader's line_num), so errors
    point at the real line even after blank lines. `utf-8-sig` drops Excel's byte-order mark."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            return [(reader.line_num, row) for row in reader if row]
    except UnicodeDecodeError:
        raise ConfigError(field, f"{path}, line {_first_non_utf8_line(path)}: not UTF-8 text",
                          "Save it as UTF-8 (Excel: \"CSV UTF-8\"; from Latin-1: "
                          "`iconv -f latin1 -t utf-8`) and run again.") from None
    except csv.Error as error:
        raise ConfigError(field, f"{path}, line {reader.line_num}: not a CSV row ({error})",
                          "Write one row per image: path, then its target values.") from None


def _first_non_utf8_line(path: str) -> int:
    """The line of the first byte that is not UTF-8 (the text reader's error position is
    relative to its buffer, not to the file)."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        data.decode("utf-8")  # A byte-order mark is valid UTF-8.
    except UnicodeDecodeError as error:
        return data[:error.start].count(b"\n") + 1
    return 1


class _RowChecker:
    """Checks one CSV's rows, each error naming `<csv path>, line N` and the fix."""

    def __init__(self, path: str, folder: str, field: str, fix: str):
        self.path, self.folder, self.field, self.fix = path, folder, field, fix
        self.root = os.path.realpath(folder)

    def image(self, line: int, row: list[str]) -> str:
        """The image's resolved path; refuses one that resolves outside the split folder.

        The resolved path is what is read: TensorFlow's reader collapses `..` before following
        symbolic links, so the path as written could open another file than the one checked.
        """
        relative = row[0].strip()
        resolved, problem = _resolve(relative, self.folder, self.root)
        if problem:
            raise ConfigError(self.field, f"{self.path}, line {line}: the image path "
                              f"{relative!r} {problem}", "List each image by its path relative "
                              f"to {self.folder}/ and copy any image from elsewhere into that "
                              "folder.")
        return resolved

    def targets(self, line: int, row: list[str], count: int) -> np.ndarray:
        try:
            values = np.array([float(value) for value in row[1:]], np.float32)
        except ValueError:
            values = None
        if values is None or len(values) != count or not np.isfinite(values).all():
            raise ConfigError(self.field, f"{self.path}, line {line}: expected an image path "
                              f"and {count} finite number(s), got {row}", self.fix)
        return values

    def check_unique(self, labelled: list, lines: list[int]) -> None:
        """Refuses an image listed twice (as resolved): with other targets the truth is
        ambiguous, with the same ones it would weigh double in training and test metrics."""
        first = {}
        for (image, values), line in zip(labelled, lines, strict=True):
            if image not in first:
                first[image] = (line, values)
                continue
            earlier, earlier_values = first[image]
            differ = "with different targets" if not np.array_equal(earlier_values, values) \
                else "with the same targets"
            raise ConfigError(self.field, f"{self.path}, lines {earlier} and {line} list the "
                              f"same image {os.path.relpath(image, self.root)!r} {differ}",
                              "List each image once, with its one set of targets.")


def _resolve(relative: str, folder: str, root: str) -> tuple[str, str | None]:
    """(resolved path, what is wrong with it or None) of a path listed for `folder`, whose
    resolved path is `root`: it must lie strictly inside it."""
    if not relative:
        return "", "is empty"
    if "\0" in relative:
        return "", "holds a NUL byte"
    resolved = os.path.realpath(os.path.join(folder, relative))
    if not _inside(resolved, root):
        return resolved, f"leads outside {folder}/ (absolute, `..` or a symbolic link out of it)"
    return resolved, None


def _inside(path: str, root: str) -> bool:
    """Whether the resolved `path` lies strictly below the resolved folder `root`."""
    return path != root and os.path.commonpath([path, root]) == root
