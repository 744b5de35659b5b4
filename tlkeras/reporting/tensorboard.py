"""TensorBoard for a two-phase run: one epoch axis, one iteration axis, and a visible phase switch.

Keras' TensorBoard callback logs the epoch scalars at the epoch number, which both phases share
(phase 2 fits from `initial_epoch` on). But it logs `evaluation_<metric>_vs_iterations` at
`model.optimizer.iterations`, and that count restarts at 0 with phase 2's new optimizer (phase 1
on cached features even trains another model): phase 2's points land on phase 1's steps, and
TensorBoard shows one curve where there were two. `PhasedTensorBoard` logs them at the run's
global iteration instead (epoch x steps per epoch + batch), so both phases form one curve, and
logs `epoch_phase` (1 or 2) with the epoch scalars, so Time Series shows where phase 2 starts
beside the loss and accuracy curves. `start_phase` also writes what changed at that epoch as text.
"""

import keras
import tensorflow as tf

PHASE_TAG = "phase"  # Text summary in logs/train at each marked phase's first epoch.


class PhasedTensorBoard(keras.callbacks.TensorBoard):
    """keras.callbacks.TensorBoard whose iteration steps continue across `fit` calls, with the
    current phase number logged every epoch as `epoch_phase`."""

    def __init__(self, log_dir: str, **kwargs):
        super().__init__(log_dir=log_dir, **kwargs)
        self.phase = 1  # Set by `start_phase`; a resumed run calls it again before phase 2.
        self._offset = None  # Global iteration minus the optimizer's count, per `fit` call.
        self._iterations_done = 0  # Global iterations at the end of the last `fit` call.

    def on_train_begin(self, logs=None):
        self._offset = None  # Known at the first epoch: `fit` tells callbacks no initial_epoch.
        super().on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        if self._offset is None:
            steps = self.params.get("steps")
            start = epoch * steps if steps else self._iterations_done
            self._offset = start - self._optimizer_iterations()
            self._global_train_batch = start  # Batch summaries and profiling continue too.
        super().on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, {**(logs or {}), "phase": self.phase})

    def on_train_end(self, logs=None):
        self._iterations_done = self._global_iteration()
        super().on_train_end(logs)

    def on_test_end(self, logs=None):
        """As Keras' own, at the global iteration instead of the optimizer's count."""
        if self.model.optimizer is not None and hasattr(self.model.optimizer, "iterations"):
            with self._val_writer.as_default():
                for name, value in (logs or {}).items():
                    self.summary.scalar(f"evaluation_{name}_vs_iterations", value,
                                        step=self._global_iteration())
        self._pop_writer()

    def _optimizer_iterations(self) -> int:
        optimizer = self.model.optimizer
        if optimizer is None or not hasattr(optimizer, "iterations"):
            return 0
        return int(keras.ops.convert_to_numpy(optimizer.iterations))

    def _global_iteration(self) -> int:
        offset = self._iterations_done if self._offset is None else self._offset
        return offset + self._optimizer_iterations()


def start_phase(callbacks: list, phase: int, epoch: int, text: str) -> None:
    """Marks `phase` as starting at `epoch`: every PhasedTensorBoard in `callbacks` logs it as
    `epoch_phase` from then on, and `text` goes to its Text tab at that epoch."""
    for callback in callbacks:
        if isinstance(callback, PhasedTensorBoard):
            callback.phase = phase
            log_phase_start(callback.log_dir, epoch, text)


def log_phase_start(logs_dir: str, epoch: int, text: str) -> None:
    """`text` (markdown) as the `phase` text summary in `<logs_dir>/train` at step `epoch`."""
    log_text(f"{logs_dir}/train", PHASE_TAG, text, epoch)


def log_text(log_dir: str, name: str, markdown: str, step: int) -> None:
    """One markdown text summary in an event file under `log_dir`, flushed and closed at once
    (another writer, such as the Keras callback's, may be open on the same folder)."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        tf.summary.text(name, markdown, step=step)
    writer.close()


def code_block(text: str) -> str:
    """Fixed-width text for TensorBoard's markdown renderer: each line indented four spaces."""
    return "\n".join(f"    {line}" for line in text.splitlines())


def markdown_table(values: dict[str, float]) -> str:
    """A two-column markdown table, values to four decimals (integers as they are)."""
    rows = ["| metric | value |", "| --- | --- |"]
    rows += [f"| {name} | {value if isinstance(value, int) else f'{value:.4f}'} |"
             for name, value in values.items()]
    return "\n".join(rows)
