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
# TensorBoard shows an image card at about 256 pixels (Time Series' default) to 330 (Images):
# what is readable there is text that is large relative to the whole image. Up to 12 classes
# the confusion matrix PNG is 400 x 400 pixels, where counts in 11 points (15 pixels) show
# about 10 pixels high at 256; beyond 12 classes it grows by 30 pixels per class.
CONFUSION_INCHES = 4.0
CELL_INCHES = 0.3
LABEL_POINTS = 9  # Class names, axis labels and title.
CELL_POINTS = 11  # The counts in the cells.
MAX_LABELLED_CLASSES = 30  # Beyond that the counts no longer fit in their cells.
GRID_COLUMNS = 5
GRID_CELL_INCHES = 2  # Each misclassified image gets a 200 x 200 pixel cell.
SCATTER_INCHES = 5  # Each regression target's scatter plot is 500 x 500 pixels.


def confusion_matrix_png(confusion: np.ndarray, class_names: list[str], title: str) -> bytes:
    """The confusion matrix as PNG bytes (see `confusion_matrix_figure`)."""
    return _png(confusion_matrix_figure(confusion, class_names, title))


def confusion_inches(classes: int) -> float:
    """Side of the square figure: CONFUSION_INCHES up to 12 classes, then CELL_INCHES more per
    class, so cells keep room for their counts."""
    return CONFUSION_INCHES + max(0, classes - 12) * CELL_INCHES


def confusion_pixels(classes: int) -> int:
    """Width and height of the confusion matrix PNG."""
    return round(confusion_inches(classes) * DPI)


def confusion_matrix_figure(confusion: np.ndarray, class_names: list[str], title: str):
    """Counts in the cells, coloured by the share of their true class (rows sum to 1).

    Counts only: at TensorBoard's card size a cell holding a share and a count in 7 points was
    unreadable; the colour carries the share. Cells are labelled up to MAX_LABELLED_CLASSES.
    """
    classes = len(class_names)
    normalised = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    inches = confusion_inches(classes)
    figure, axes = plt.subplots(figsize=(inches, inches), dpi=DPI)
    axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(classes)
    axes.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=LABEL_POINTS)
    axes.set_yticks(ticks, class_names, fontsize=LABEL_POINTS)
    axes.set_xlabel("predicted class", fontsize=LABEL_POINTS)
    axes.set_ylabel("true class", fontsize=LABEL_POINTS)
    axes.set_title(f"{title or 'Confusion matrix'} (colour: share of true class)",
                   fontsize=LABEL_POINTS)
    if classes <= MAX_LABELLED_CLASSES:
        points = cell_points(classes, len(str(confusion.max())))
        for (row, column), count in np.ndenumerate(confusion):
            axes.text(column, row, str(count), ha="center", va="center", fontsize=points,
                      color=_cell_colour(count, normalised[row, column]))
    figure.tight_layout()
    return figure


def cell_points(classes: int, digits: int) -> float:
    """CELL_POINTS, or less where the widest count would overflow its cell (a digit is about
    0.6 em wide; the matrix takes about 70% of the figure's width)."""
    cell_pixels = 0.7 * confusion_inches(classes) * DPI / classes
    return min(CELL_POINTS, 0.85 * cell_pixels / (digits * 0.6 * DPI / 72))


def _cell_colour(count: int, share: float) -> str:
    """White on dark cells, black on light ones, grey for zeros so the errors stand out."""
    return "white" if share > 0.5 else "black" if count else "#a0a0a0"


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
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        for name, png in images.items():
            tf.summary.image(name, tf.image.decode_png(png, channels=4)[tf.newaxis], step=step)
    writer.close()  # Written now, not when the writer happens to be collected.


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
