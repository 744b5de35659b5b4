"""The run's settings and final metrics for TensorBoard's HParams dashboard.

Written once per finished run into `<run dir>/logs`, so `tensorboard --logdir runs` lists every
run as a row of the HParams dashboard (settings as columns, metrics to sort and compare by).
"""

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp


def log_hparams(log_dir: str, settings: dict, final_metrics: dict[str, float]) -> None:
    """Every setting as an hparam (lists and None as text), each metric as a scalar at step 0."""
    values = {name: value if isinstance(value, bool | int | float | str) else str(value)
              for name, value in settings.items()}
    with tf.summary.create_file_writer(log_dir).as_default():
        hp.hparams(values)
        for name, value in final_metrics.items():
            tf.summary.scalar(name, value, step=0)
