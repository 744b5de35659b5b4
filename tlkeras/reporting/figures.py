"""Report figures as PNG bytes (matplotlib, no display needed), and their TensorBoard logging.

PNG bytes serve both the files in the run folder and TensorBoard's Images tab, so the two always
show the same picture.
"""

import io

import matplotlib

matplotlib.use("Agg")  # Headless: training machines and CI have no display.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

DPI = 100
CONFUSION_INCHES = 8  # The confusion matrix PNG is 800 x 800 pixels.
GRID_COLUMNS = 5
GRID_CELL_INCHES = 2  # Each misclassified image gets a 200 x 200 pixel cell.
SCATTER_INCHES = 5  # Each regression target's scatter plot is 500 x 500 pixels.


def confusion_matrix_png(confusion: np.ndarray, class_names: list[str], title: str) -> bytes:
    """Rows normalised to the true class (each row sums to 1), counts in parentheses."""
    normalised = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(CONFUSION_INCHES, CONFUSION_INCHES), dpi=DPI)
    axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"Confusion matrix (rows normalised) {title}".strip())
    if len(class_names) <= 30:  # Beyond that the numbers no longer fit in their cells.
        for (row, column), value in np.ndenumerate(normalised):
            axes.text(column, row, f"{value:.2f}\n({confusion[row, column]})", ha="center",
                      va="center", fontsize=7, color="white" if value > 0.5 else "black")
    return _png(figure)


def image_grid_png(images: np.ndarray, true_ids: np.ndarray, predicted_ids: np.ndarray,
                   class_names: list[str], title: str) -> bytes:
    """Misclassified images with their true and predicted class names."""
    rows = -(-len(images) // GRID_COLUMNS)
    figure, axes = plt.subplots(rows, GRID_COLUMNS, dpi=DPI, squeeze=False,
                                figsize=(GRID_COLUMNS * GRID_CELL_INCHES,
                                         rows * GRID_CELL_INCHES))
    for index, cell in enumerate(axes.flat):
        cell.axis("off")
        if index < len(images):
            cell.imshow(np.clip(images[index], 0, 255).astype(np.uint8))
            cell.set_title(f"true: {class_names[true_ids[index]]}\n"
                           f"predicted: {class_names[predicted_ids[index]]}", fontsize=8)
    figure.suptitle(f"Misclassified {title}".strip())
    return _png(figure)


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def log_to_tensorboard(log_dir: str, images: dict[str, bytes], step: int) -> None:
    """Each PNG as an image summary named after its key, in an event file under `log_dir`."""
    with tf.summary.create_file_writer(log_dir).as_default():
        for name, png in images.items():
            tf.summary.image(name, tf.image.decode_png(png, channels=4)[tf.newaxis], step=step)


def predicted_vs_true_png(true: np.ndarray, predicted: np.ndarray, names: list[str],
                          title: str) -> bytes:
    """Regression: one scatter per target, predicted against true, with the y = x line."""
    figure, axes = plt.subplots(1, len(names), dpi=DPI, squeeze=False,
                                figsize=(SCATTER_INCHES * len(names), SCATTER_INCHES))
    for index, (cell, name) in enumerate(zip(axes.flat, names, strict=True)):
        low = min(true[:, index].min(), predicted[:, index].min())
        high = max(true[:, index].max(), predicted[:, index].max())
        cell.plot([low, high], [low, high], color="grey", linewidth=1)
        cell.scatter(true[:, index], predicted[:, index], s=6, alpha=0.5)
        cell.set_xlabel(f"true {name}")
        cell.set_ylabel(f"predicted {name}")
    figure.suptitle(f"Predicted vs true {title}".strip())
    return _png(figure)
