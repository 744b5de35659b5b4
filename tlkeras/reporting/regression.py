"""Regression report: how far predictions are from the truth, per target, against a baseline.

The baseline predicts the training split's mean for every image: a model that does not beat it
has learned nothing from the pixels. Per target: MAE, RMSE, R^2 and the baseline's MAE, in the
targets' own units; `report.json`, a printed table, and a predicted-vs-true scatter plot
(`predicted_vs_true.png`, also in TensorBoard's Images tab).
"""

import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tlkeras.reporting import figures
from tlkeras.reporting.classification import save


def collect(predict_batch: Callable, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(true targets [N, T], predictions [N, T]) over batched (image, targets) examples."""
    true, predicted = [], []
    for images, targets in dataset:
        true.append(targets.numpy())
        predicted.append(np.asarray(predict_batch(images)))
    return np.concatenate(true), np.concatenate(predicted)


def regression_report(true: np.ndarray, predicted: np.ndarray, names: list[str],
                      train_mean: np.ndarray) -> dict:
    """The report as a JSON-ready dict; R^2 of a constant truth is 0 by convention."""
    errors = predicted - true
    mae = np.abs(errors).mean(axis=0)
    rmse = np.sqrt(np.square(errors).mean(axis=0))
    variance = true.var(axis=0)
    r2 = np.where(variance > 0, 1 - np.square(errors).mean(axis=0) / np.where(
        variance > 0, variance, 1), 0.0)
    baseline_mae = np.abs(true - train_mean).mean(axis=0)
    per_target = {name: {"mae": float(mae[i]), "rmse": float(rmse[i]), "r2": float(r2[i]),
                         "baseline_mae": float(baseline_mae[i])}
                  for i, name in enumerate(names)}
    return {"examples": int(len(true)), "per_target": per_target, "target_names": names,
            "mae": float(mae.mean()), "rmse": float(rmse.mean()), "r2": float(r2.mean()),
            "baseline_mae": float(baseline_mae.mean())}


def format_table(report: dict, title: str) -> str:
    width = max(12, *(len(name) for name in report["target_names"]))
    rows = [title, f"{'':>{width}} {'MAE':>10} {'RMSE':>10} {'R^2':>8} {'mean-baseline MAE':>18}"]
    for name, values in report["per_target"].items():
        rows.append(f"{name:>{width}} {values['mae']:>10.4g} {values['rmse']:>10.4g} "
                    f"{values['r2']:>8.4f} {values['baseline_mae']:>18.4g}")
    rows.append(f"{'examples':>{width}} {report['examples']}")
    return "\n".join(rows)


def write_report(true: np.ndarray, predicted: np.ndarray, names: list[str],
                 train_mean: np.ndarray, out_dir: str, log_dir: str | None = None,
                 step: int = 0, title: str = "") -> dict:
    """report.json and predicted_vs_true.png in `out_dir` (and TensorBoard); returns the report."""
    report = regression_report(true, predicted, names, train_mean)
    os.makedirs(out_dir, exist_ok=True)
    images = {"predicted_vs_true": figures.predicted_vs_true_png(true, predicted, names, title)}
    save(report, images, format_table(report, title or out_dir), out_dir, log_dir, step)
    return report
