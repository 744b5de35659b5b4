"""TF Serving's version folders: `<export_dir>/<integer>/`, the highest one being served.

No TensorFlow or Keras here, so the command-line tools can resolve paths before loading either.
"""

import os

from tlkeras.errors import ConfigError

LABELS_FILE = os.path.join("assets.extra", "labels.txt")  # In a version: class i on line i.


def next_version(export_dir: str) -> int:
    """One more than the highest integer version present, so no export overwrites another."""
    return max(_versions(export_dir), default=0) + 1


def version_dir(model_path: str) -> str:
    """The version folder: `model_path` itself if it holds a SavedModel, else its newest version."""
    if os.path.isfile(os.path.join(model_path, "saved_model.pb")):
        return model_path
    versions = _versions(model_path)
    if not versions:
        raise ConfigError("model", f"{model_path!r} holds no saved_model.pb and no integer "
                          "version folder", "Pass runs/<run>/export or runs/<run>/export/<N>.")
    return os.path.join(model_path, str(max(versions)))


def _versions(export_dir: str) -> list[int]:
    return [int(name) for name in os.listdir(export_dir) if name.isdigit()] \
        if os.path.isdir(export_dir) else []
