"""Resuming a killed run after its last finished epoch, with the same results as no kill.

After every epoch `EpochBackup` saves what the next epoch depends on: the weights of the model
being fitted with its optimizer's state (Keras `save_weights` stores both), the random-seed states
of layers such as Dropout (which `save_weights` leaves out), the best checkpoint's score, and the
phase's record so far. Each backup's weights go to a new file; then `state.json` is replaced
atomically to point at it, so a SIGKILL at any instant leaves the previous backup or the new one,
never a mix. With `TrainingData.epochs`, which makes each epoch's order a function of --seed and
the epoch number, a resumed run trains on exactly the batches an uninterrupted run trains on.

Why not `keras.callbacks.BackupAndRestore`: it overwrites its weights file in place and keeps the
epoch number in a second file (a kill between the two writes resumes with mismatched state), it
leaves out random-seed states, and it knows one `fit` call, while tlkeras fits two phases with
different models and optimizers (phase 1 may fit only the head, on cached features).
"""

import dataclasses
import json
import logging
import math
import os
import shutil
import time

import keras

from tlkeras.training.checkpoint import finite_weights
from tlkeras.training.run_state import write_json

BACKUP_FOLDER = "resume"  # In the run folder.
STATE_FILE = "state.json"
log = logging.getLogger(__name__)


class PhaseRecord(keras.callbacks.Callback):
    """One phase's finished epochs on the shared epoch axis: their logs and wall times."""

    def __init__(self, name: str, epochs_done: int, history: dict | None = None,
                 epoch_seconds: list | None = None):
        super().__init__()
        self.name = name
        self.epochs_done = epochs_done
        self.history = history or {}
        self.epoch_seconds = epoch_seconds or []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(round(time.perf_counter() - self._start, 3))
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.epochs_done = epoch + 1

    def as_dict(self) -> dict:
        return {"name": self.name, "epochs_done": self.epochs_done, "history": self.history,
                "epoch_seconds": self.epoch_seconds}


@dataclasses.dataclass
class Backups:
    """The backups of one run folder, and the best-checkpoint callback whose score they keep.

    `restore_dir`, if given, is where backups are restored from instead of `backup_dir`: a
    multi-worker run's other workers write their own backups to a temporary folder but resume
    from the chief's, so that every worker continues from the same epoch.
    """

    backup_dir: str
    checkpoint: keras.callbacks.ModelCheckpoint  # A BestCheckpoint.
    restore_dir: str | None = None

    def latest(self) -> dict | None:
        """The last backup's state, or None before the first epoch has finished."""
        try:
            with open(os.path.join(self._restore_dir, STATE_FILE)) as file:
                return json.load(file)
        except FileNotFoundError:
            return None

    def restore(self, model: keras.Model, phase_name: str) -> PhaseRecord | None:
        """Loads the last backup into `model` (compiled) if it belongs to this phase."""
        state = self.latest()
        if state is None or state["record"]["name"] != phase_name:
            return None
        if not model.optimizer.built:  # Its variables must exist to receive the saved state.
            model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(self._restore_dir, state["weights"]))
        for variable, value in zip(_seed_states(model), state["seed_states"], strict=True):
            variable.assign(value)
        self.restore_best_score()
        log.info("Resumed %s after epoch %d from %s.", phase_name, state["record"]["epochs_done"],
                 self._restore_dir)
        return PhaseRecord(**state["record"])

    def restore_best_score(self) -> None:
        """The best checkpoint's score and epoch from the last backup, whichever phase it is
        from: a run resumed at the switch to phase 2 must not overwrite a better phase-1 model."""
        state = self.latest()
        if state is not None:
            self.checkpoint.best = state["best"]
            self.checkpoint.best_epoch = state.get("best_epoch")

    @property
    def _restore_dir(self) -> str:
        return self.restore_dir or self.backup_dir

    def callback(self, record: PhaseRecord) -> keras.callbacks.Callback:
        """Backs up after every epoch; must come after `record` and the checkpoint callback."""
        return EpochBackup(self, record)

    def remove(self) -> None:
        """Deletes the backups once the run has finished and its results are written."""
        shutil.rmtree(self.backup_dir, ignore_errors=True)


class EpochBackup(keras.callbacks.Callback):
    """Saves the fitted model, optimizer, seed states and record at the end of every epoch."""

    def __init__(self, backups: Backups, record: PhaseRecord):
        super().__init__()
        self._backups = backups
        self._record = record

    def on_epoch_end(self, epoch, logs=None):
        if not (all(math.isfinite(value) for value in (logs or {}).values())
                and finite_weights(self.model)):
            return  # Diverged (TerminateOnNaN stops the run): keep the last good backup.
        directory = self._backups.backup_dir
        os.makedirs(directory, exist_ok=True)
        weights = f"{self._record.name}-epoch{epoch + 1:04d}.weights.h5"
        self.model.save_weights(os.path.join(directory, weights))
        write_json(os.path.join(directory, STATE_FILE), {
            "weights": weights, "record": self._record.as_dict(),
            "seed_states": [variable.numpy().tolist() for variable in _seed_states(self.model)],
            "best": _json_number(self._backups.checkpoint.best),
            "best_epoch": self._backups.checkpoint.best_epoch})
        for name in os.listdir(directory):  # Older backups, or one a kill left half-written.
            if name.endswith(".weights.h5") and name != weights:
                os.remove(os.path.join(directory, name))


def _json_number(value) -> float | None:
    return None if value is None else float(value)


def _seed_states(model: keras.Model) -> list:
    """The model's random-seed states (e.g. Dropout's): its variables that are not weights."""
    weights = {id(weight) for weight in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]
