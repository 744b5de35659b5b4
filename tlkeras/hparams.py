"""The run's flags and final metrics for TensorBoard's HParams dashboard.

Written once per finished run into `<run dir>/logs`, so `tensorboard --logdir runs` lists every
run as a row of the HParams dashboard (flags as columns, metrics to sort and compare by).
"""

import dataclasses

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from tlkeras.config import Config


def log_hparams(log_dir: str, config: Config, final_metrics: dict[str, float]) -> None:
    """Every flag as an hparam (lists and None as text) and each metric as a scalar at step 0."""
    values = {name: value if isinstance(value, bool | int | float | str) else str(value)
              for name, value in dataclasses.asdict(config).items()}
    with tf.summary.create_file_writer(log_dir).as_default():
        hp.hparams(values)
        for name, value in final_metrics.items():
            tf.summary.scalar(name, value, step=0)
