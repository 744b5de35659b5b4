"""Evaluation report: where the model fails, per class, from one prediction pass over a split.

Per class precision, recall, F1 and support, their macro and support-weighted averages, accuracy,
top-k accuracy and the confusion matrix go to `report.json` and a printed table; the confusion
matrix and a grid of misclassified images go to PNG files and TensorBoard's Images tab, the
table to its Text tab. Used after each phase (`tlkeras.training.workflow`) and on any SavedModel
export (`tlkeras evaluate`).
"""

import dataclasses
import json
import logging
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tlkeras.reporting import figures
from tlkeras.reporting.tensorboard import code_block, log_text

MAX_MISCLASSIFIED = 25  # Images kept for the grid: a 5 x 5 figure.
log = logging.getLogger(__name__)


@dataclasses.dataclass
class Predictions:
    """True labels and probabilities of a whole split, and its first misclassified images."""

    labels: np.ndarray  # [N] int
    probabilities: np.ndarray  # [N, classes]
    misclassified_images: np.ndarray  # [M, H, W, 3] raw 0-255 pixels, M <= MAX_MISCLASSIFIED
    misclassified_labels: np.ndarray  # [M]
    misclassified_predictions: np.ndarray  # [M]


def collect_predictions(predict_batch: Callable[[np.ndarray], np.ndarray],
                        dataset: tf.data.Dataset) -> Predictions:
    """Runs `predict_batch` (pixels -> probabilities) over batched (image, label) examples.

    Only the first misclassified images are kept, so memory stays flat on large test splits.
    """
    labels, probabilities, wrong = [], [], []
    for images, batch_labels in dataset:
        batch_probabilities = np.asarray(predict_batch(images))
        batch_labels = batch_labels.numpy()
        labels.append(batch_labels)
        probabilities.append(batch_probabilities)
        predicted = batch_probabilities.argmax(axis=1)
        for index in np.flatnonzero(predicted != batch_labels):
            if len(wrong) < MAX_MISCLASSIFIED:
                wrong.append((images[index].numpy(), batch_labels[index], predicted[index]))
    images, true, predicted = (zip(*wrong, strict=True) if wrong else ((), (), ()))
    return Predictions(np.concatenate(labels), np.concatenate(probabilities),
                       np.array(images), np.array(true, dtype=int),
                       np.array(predicted, dtype=int))


def classification_report(labels: np.ndarray, probabilities: np.ndarray,
                          class_names: list[str], top_k: int) -> dict:
    """The report as a JSON-ready dict; a class never predicted has precision 0 (as sklearn)."""
    classes = len(class_names)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((classes, classes), dtype=np.int64)  # Rows: true, columns: predicted.
    np.add.at(confusion, (labels, predicted), 1)
    correct = np.diag(confusion).astype(float)
    support = confusion.sum(axis=1)
    precision = _divide(correct, confusion.sum(axis=0))
    recall = _divide(correct, support)
    f1 = _divide(2 * precision * recall, precision + recall)
    k = min(top_k, classes)
    top_k_ids = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    per_class = {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                        "f1": float(f1[i]), "support": int(support[i])}
                 for i, name in enumerate(class_names)}
    return {
        "examples": int(len(labels)),
        "accuracy": float(correct.sum() / len(labels)),
        f"top_{k}_accuracy": float((top_k_ids == labels[:, None]).any(axis=1).mean()),
        "per_class": per_class,
        "macro_avg": _average(precision, recall, f1, np.ones(classes)),
        "weighted_avg": _average(precision, recall, f1, support),
        "class_names": class_names,
        "confusion_matrix": confusion.tolist(),
    }


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=float),
                     where=denominator > 0)


def _average(precision, recall, f1, weights) -> dict:
    return {name: float(np.average(values, weights=weights))
            for name, values in (("precision", precision), ("recall", recall), ("f1", f1))}


def format_table(report: dict, title: str) -> str:
    """The report as the familiar precision / recall / f1 / support table."""
    width = max(12, *(len(name) for name in report["class_names"]))
    rows = [title, f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}"]

    def row(name, values):
        rows.append(f"{name:>{width}} {values['precision']:>9.4f} {values['recall']:>9.4f} "
                    f"{values['f1']:>9.4f} {values['support']:>9d}")

    for name, values in report["per_class"].items():
        row(name, values)
    rows.append("")
    row("macro avg", {**report["macro_avg"], "support": report["examples"]})
    row("weighted avg", {**report["weighted_avg"], "support": report["examples"]})
    top_k = next(key for key in report if key.startswith("top_"))
    rows.append(f"{'accuracy':>{width}} {report['accuracy']:>9.4f}   "
                f"{top_k.replace('_', '-')} {report[top_k]:.4f}   examples {report['examples']}")
    return "\n".join(rows)


def write_report(predictions: Predictions, class_names: list[str], top_k: int, out_dir: str,
                 log_dir: str | None = None, step: int = 0, title: str = "") -> dict:
    """report.json, confusion_matrix.png and misclassified.png in `out_dir`; with `log_dir`,
    both figures also go to TensorBoard's Images tab at `step`. Returns the report."""
    report = classification_report(predictions.labels, predictions.probabilities, class_names,
                                   top_k)
    os.makedirs(out_dir, exist_ok=True)
    images = {"confusion_matrix": figures.confusion_matrix_png(
        np.array(report["confusion_matrix"]), class_names, title)}
    if len(predictions.misclassified_images):
        images["misclassified"] = figures.image_grid_png(
            predictions.misclassified_images, predictions.misclassified_labels,
            predictions.misclassified_predictions, class_names, title)
    save(report, images, format_table(report, title or out_dir), out_dir, log_dir, step)
    return report


def save(report: dict, images: dict[str, bytes], table: str, out_dir: str,
         log_dir: str | None, step: int) -> None:
    """report.json and `<name>.png` per image in `out_dir`, the images and the table in
    TensorBoard (Images and Text tabs, with `log_dir`), and the table printed: the same for
    classification and regression reports."""
    for name, png in images.items():
        with open(os.path.join(out_dir, f"{name}.png"), "wb") as file:
            file.write(png)
    with open(os.path.join(out_dir, "report.json"), "w") as file:
        json.dump(report, file, indent=2)
    if log_dir:
        figures.log_to_tensorboard(log_dir, images, step)
        log_text(log_dir, "report", code_block(table), step)
    print(table, flush=True)
