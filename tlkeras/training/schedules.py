"""Each phase's learning rate over its steps: optional linear warm-up, then constant or cosine.

A schedule of the optimizer's own step counter, not a callback: the counter is part of the
optimizer state that every epoch's backup saves, so a resumed phase continues the schedule at
the step it stopped (a callback's epoch counter would restart). Each phase has its own optimizer,
so each phase's schedule starts at its own learning rate on the shared epoch axis.
"""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tlkeras")
class PhaseSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`rate` x (step + 1) / warmup_steps while warming up; then `rate`, or (cosine) decayed
    from `rate` to 0 over the remaining steps: rate x (1 + cos(pi x progress)) / 2."""

    def __init__(self, rate: float, warmup_steps: int, total_steps: int, cosine: bool):
        self.rate = float(rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.cosine = bool(cosine)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warming = self.rate * (step + 1.0) / max(self.warmup_steps, 1)
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        after = (self.rate * 0.5 * (1.0 + ops.cos(math.pi * progress)) if self.cosine
                 else self.rate * ops.ones_like(step))
        return ops.where(step < self.warmup_steps, warming, after)

    def get_config(self):
        return {"rate": self.rate, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "cosine": self.cosine}


def phase_learning_rate(rate: float, schedule: str, warmup_epochs: int, epochs: int,
                        steps_per_epoch: int):
    """The optimizer's `learning_rate` for one phase: the plain rate when nothing varies."""
    if schedule == "constant" and not warmup_epochs:
        return rate
    return PhaseSchedule(rate, warmup_epochs * steps_per_epoch, epochs * steps_per_epoch,
                         cosine=schedule == "cosine")
