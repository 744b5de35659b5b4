"""The best checkpoint: only finite models, never a truncated file, and which epoch it holds.

Keras' `ModelCheckpoint` compares the monitored value and writes `model.save(path)` in place.
Two ways that loses the last good model:
- A diverged epoch: a NaN model predicts class 0 everywhere, so its `val_accuracy` is class 0's
  share, a finite number that can beat a real model's. So an epoch is a candidate only if its
  monitored value *and every weight* are finite.
- A write that fails halfway (disk full, a kill): the old checkpoint is already gone and the new
  one is truncated. So the model is written to a temporary name beside it, its archive is
  read back (every member's CRC), and only then renamed over the old one (atomic on POSIX).
"""

import logging
import math
import os
import zipfile

import keras
import numpy as np

log = logging.getLogger(__name__)


def finite_weights(model: keras.Model) -> bool:
    """True if no weight of `model` is NaN or infinite."""
    return all(np.isfinite(weight).all() for weight in model.get_weights())


def write_model_atomically(model: keras.Model, path: str) -> None:
    """`model.save(path)` that leaves the old file or the complete new one, never a mix."""
    temporary = os.path.join(os.path.dirname(path), f".partial-{os.path.basename(path)}")
    try:
        model.save(temporary)
        _verify_archive(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _verify_archive(path: str) -> None:
    """A `.keras` file is a zip archive: every member must read back with its CRC."""
    with zipfile.ZipFile(path) as archive:
        damaged = archive.testzip()
    if damaged is not None:
        raise OSError(f"{path}: {damaged} did not read back intact after writing")


class BestCheckpoint(keras.callbacks.ModelCheckpoint):
    """Saves `full_model` whenever the monitored value improves and the model is finite.

    `full_model` is saved even while only part of it is fitted (the head on cached features,
    the unfrozen top on cached boundary activations): those parts share the full model's
    layers. `best_epoch` (1-based, on the run's shared epoch axis) names the epoch saved.
    """

    def __init__(self, full_model: keras.Model, filepath: str, **kwargs):
        super().__init__(filepath, save_best_only=True, **kwargs)
        self._full_model = full_model
        self.best_epoch: int | None = None

    def set_model(self, model):
        del model  # The fitted part shares its layers with the full model, which is saved.
        super().set_model(self._full_model)

    def _should_save_model(self, epoch, batch, logs, filepath):
        current = (logs or {}).get(self.monitor)
        if current is not None and not math.isfinite(float(current)):
            return False
        if not finite_weights(self.model):
            log.warning("Epoch %d: the model has non-finite weights; the best checkpoint "
                        "(%s) is kept.", epoch + 1, self._kept())
            return False
        return super()._should_save_model(epoch, batch, logs, filepath)

    def _save_model(self, epoch, batch, logs):
        filepath = self._get_file_path(epoch, batch, logs)
        if self._should_save_model(epoch, batch, logs, filepath):
            os.makedirs(os.path.dirname(filepath), exist_ok=True)
            write_model_atomically(self.model, filepath)
            self.best_epoch = epoch + 1

    def _kept(self) -> str:
        if self.best_epoch is None:
            return "none yet"
        return f"epoch {self.best_epoch}, {self.monitor} {self.best:.4f}"

    def kept_note(self) -> str:
        """What a stopped run's message says about the checkpoint it keeps."""
        if self.best_epoch is None or not os.path.exists(self.filepath):
            return "No epoch finished well enough to checkpoint."
        return f"The last good checkpoint is kept: {self.filepath} ({self._kept()})."
