"""The run's hyperparameters and final metrics for TensorBoard's HParams dashboard.

Written once per finished run into `<run dir>/logs`, so `tensorboard --logdir runs` lists every
run as a row of the HParams dashboard: what shaped the model as columns, metrics to sort and
compare by. Where files live, run names and machine settings are left out: they differ between
runs without explaining any difference in their metrics, and a path as a column is noise.
"""

import os

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from tlkeras.reporting.tensorboard import log_text, markdown_table

# Config fields that are not hyperparameters: where data and outputs live, what the run is
# called, which machine runs it, safety limits, and export options that leave training alone.
NOT_HYPERPARAMETERS = frozenset({
    "dataset", "image_dir", "data_dir", "feature_store", "cache_memory_mb",  # `data` replaces
    "max_image_megapixels",  # the first two: the data's name, without its folder.
    "output_dir", "run_name", "fresh_run",
    "devices", "tpu", "worker_timeout", "jit_compile",
    "export_tflite", "top_k", "min_test_accuracy",
})
FINAL_METRICS_TAG = "final_metrics"  # Text summary: the metrics as a markdown table.


def hyperparameters(settings: dict) -> dict[str, bool | int | float | str]:
    """The settings that shape the model, in their own types (int stays int, bool stays bool).

    A file setting (weights, a class-weight file, a distillation teacher) is named by its last
    path component; a setting left unset (None) is "none"; a list is comma-separated.
    """
    values = {"data": settings.get("dataset") or _last_component(settings.get("image_dir"))}
    for name, value in settings.items():
        if name not in NOT_HYPERPARAMETERS:
            values[name] = _native(value)
    return values


def _native(value) -> bool | int | float | str:
    if value is None:
        return "none"
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _last_component(value) if os.sep in value or "/" in value else value
    return ",".join(str(item) for item in value)


def _last_component(path: str | None) -> str:
    return os.path.basename(os.path.normpath(path)) if path else "none"


def last_epoch(settings: dict) -> int:
    """The step of the run's last epoch on the shared epoch axis (phase 2 may be skipped)."""
    return settings["epochs"] + settings.get("fine_tune_epochs", 0) - 1


def log_hparams(log_dir: str, settings: dict, final_metrics: dict[str, float],
                step: int | None = None) -> None:
    """The hyperparameters, and each final metric as a scalar and in a markdown table, at
    `step` (default: the last epoch), so they read as the end of the epoch axis."""
    step = last_epoch(settings) if step is None else step
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        hp.hparams(hyperparameters(settings))
        for name, value in final_metrics.items():
            tf.summary.scalar(name, value, step=step)
    writer.close()
    if final_metrics:
        log_text(log_dir, FINAL_METRICS_TAG, markdown_table(final_metrics), step)
