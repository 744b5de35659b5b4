"""TensorBoard as a user sees it after a run: both phases on one epoch axis and one iteration
axis, the switch to phase 2 marked, final metrics at the last epoch with a table, HParams of real
hyperparameters in their own types, and a confusion matrix readable at the image card's size.

The end-to-end run (`trained_run`) is built by the workflow; the phase callback is also tested
in-process, fitting a small model on real images for two "phases" and reading the events back.
"""

import json

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from helpers import E2E_PHASE1_EPOCHS, E2E_PHASE2_EPOCHS, FASHION_MINI, WEIGHTS
from helpers import tensorboard_scalars as scalars
from tlkeras.config import Config
from tlkeras.reporting import figures, hparams, tensorboard

EPOCHS = list(range(E2E_PHASE1_EPOCHS + E2E_PHASE2_EPOCHS))
IMAGES_PER_CLASS = 4  # 40 real 28 x 28 images in batches of 10: 4 steps per epoch.
BATCH = 10
STEPS = 4


@pytest.mark.parametrize("split", ["train", "validation"])
def test_loss_and_accuracy_for_every_epoch_of_both_phases(trained_run, split):
    logged = scalars(trained_run[1], split)
    assert sorted(logged["epoch_loss"]) == EPOCHS
    assert sorted(logged["epoch_accuracy"]) == EPOCHS


def test_learning_rate_switches_at_phase_two(trained_run):
    learning_rate = scalars(trained_run[1], "train")["epoch_learning_rate"]
    assert sorted(learning_rate) == EPOCHS
    for epoch in EPOCHS:  # Rates from configs/quickstart.cfg.
        expected = 1e-3 if epoch < E2E_PHASE1_EPOCHS else 1e-4
        # The rate is logged as float32: one rounding (6e-8 relative), well within rel=1e-6.
        assert learning_rate[epoch] == pytest.approx(expected, rel=1e-6), epoch


def test_the_trained_run_marks_the_switch_to_phase_two(trained_run):
    phase = scalars(trained_run[1], "train")["epoch_phase"]
    assert phase == {epoch: 1 if epoch < E2E_PHASE1_EPOCHS else 2 for epoch in EPOCHS}
    texts = events(trained_run[1] / "logs" / "train")
    marker = texts.Tensors("phase")
    assert [event.step for event in marker] == [E2E_PHASE1_EPOCHS]
    assert b"Phase 2 (fine-tuning)" in tf.make_ndarray(marker[0].tensor_proto).item()


def events(log_dir) -> EventAccumulator:
    accumulator = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    accumulator.Reload()
    return accumulator


def steps_of(log_dir, tag) -> list[int]:
    """Every logged step of `tag` in file order, duplicates kept: a collision shows twice."""
    return [event.step for event in events(log_dir).Tensors(tag)]


def values_of(log_dir, tag) -> dict:
    return {event.step: tf.make_ndarray(event.tensor_proto).item()
            for event in events(log_dir).Tensors(tag)}


def texts(log_dir, tag) -> dict[int, str]:
    return {step: value.decode() for step, value in values_of(log_dir, tag).items()}


def fashion_images() -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for label, class_dir in enumerate(sorted((FASHION_MINI / "train").iterdir())):
        for path in sorted(class_dir.iterdir())[:IMAGES_PER_CLASS]:
            images.append(np.asarray(Image.open(path), dtype=np.float32) / 255)
            labels.append(label)
    return np.stack(images), np.array(labels)


def small_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                             keras.layers.Dense(10, activation="softmax")])


def fit_phase(model, callbacks, first_epoch, last_epoch, learning_rate):
    """One phase as tlkeras runs it: compiled with a new optimizer (whose iteration count starts
    at 0), fitted from `first_epoch` on the shared epoch axis, validated every epoch."""
    images, labels = fashion_images()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, batch_size=BATCH, validation_data=(images, labels),
              initial_epoch=first_epoch, epochs=last_epoch, callbacks=callbacks, verbose=0)


def test_phase_two_continues_the_iteration_axis_and_is_marked(tmp_path):
    model = small_model()
    callback = tensorboard.PhasedTensorBoard(str(tmp_path))
    fit_phase(model, [callback], 0, 2, 1e-3)
    tensorboard.start_phase([callback], 2, 2, "**Phase 2** (fine-tuning): unfroze 3 layers")
    fit_phase(model, [callback], 2, 4, 1e-4)

    # Keras' own callback logs phase 2 at the new optimizer's count: 4 and 8 again.
    for tag in ("evaluation_loss_vs_iterations", "evaluation_accuracy_vs_iterations"):
        assert steps_of(tmp_path / "validation", tag) == [STEPS, 2 * STEPS, 3 * STEPS,
                                                          4 * STEPS], tag
    assert sorted(steps_of(tmp_path / "validation", "epoch_loss")) == [0, 1, 2, 3]
    assert values_of(tmp_path / "train", "epoch_phase") == {0: 1, 1: 1, 2: 2, 3: 2}
    assert texts(tmp_path / "train", tensorboard.PHASE_TAG) == {
        2: "**Phase 2** (fine-tuning): unfroze 3 layers"}


def test_a_resumed_phase_two_logs_where_the_uninterrupted_run_does(tmp_path):
    """A killed run resumes in phase 2 with a new callback and optimizer: epoch 3's evaluation
    still lands at iteration 16, and epoch 3 is phase 2."""
    model = small_model()
    callback = tensorboard.PhasedTensorBoard(str(tmp_path))
    tensorboard.start_phase([callback], 2, 2, "Phase 2 (fine-tuning)")
    fit_phase(model, [callback], 3, 4, 1e-4)
    assert steps_of(tmp_path / "validation", "evaluation_loss_vs_iterations") == [4 * STEPS]
    assert values_of(tmp_path / "train", "epoch_phase") == {3: 2}


def settings_of_a_real_run(tmp_path) -> dict:
    return Config().replace(
        image_dir=str(FASHION_MINI), weights=str(WEIGHTS), output_dir=str(tmp_path / "runs"),
        run_name="e2e", feature_store=str(tmp_path / "store"), epochs=3, fine_tune_epochs=2,
        batch_size=32, augment_flip=True, unfreeze="40", devices=("/cpu:0",)).flat()


def session_hparams(log_dir):
    plugin_data = events(log_dir).PluginTagToContent("hparams")
    return plugin_data_pb2.HParamsPluginData.FromString(
        plugin_data["_hparams_/session_start_info"]).session_start_info.hparams


def test_hparams_are_hyperparameters_in_their_own_types(tmp_path):
    settings = settings_of_a_real_run(tmp_path)
    hparams.log_hparams(str(tmp_path / "logs"), settings,
                        {"test_accuracy": 0.875, "test_loss": 0.31})
    logged = session_hparams(tmp_path / "logs")

    for name in ("output_dir", "run_name", "image_dir", "data_dir", "feature_store", "devices",
                 "tpu", "dataset", "cache_memory_mb", "export_tflite"):
        assert name not in logged, name
    strings = {name: value.string_value for name, value in logged.items()
               if value.WhichOneof("kind") == "string_value"}
    assert not [value for value in strings.values() if "/" in value], strings
    assert strings["data"] == "fashion_mnist_mini"
    assert strings["weights"] == WEIGHTS.name
    assert strings["backbone"] == "MobileNetV2" and strings["unfreeze"] == "40"
    assert strings["optimizer"] == "adam" and strings["distill_from"] == "none"
    # The protobuf has one number kind (no integer type): an int setting is that number,
    # exactly; a bool stays a bool; neither becomes text.
    for name in ("epochs", "fine_tune_epochs", "batch_size", "seed", "image_size"):
        assert logged[name].WhichOneof("kind") == "number_value", name
        assert logged[name].number_value == settings[name], name
    assert logged["learning_rate"].number_value == settings["learning_rate"]
    assert logged["augment_flip"].WhichOneof("kind") == "bool_value"
    assert logged["augment_flip"].bool_value is True


def test_final_metrics_sit_at_the_last_epoch_with_a_table(tmp_path):
    settings = settings_of_a_real_run(tmp_path)
    hparams.log_hparams(str(tmp_path / "logs"), settings,
                        {"test_accuracy": 0.875, "test_loss": 0.31})
    last = 3 + 2 - 1  # epochs + fine_tune_epochs - 1 on the shared axis.
    assert steps_of(tmp_path / "logs", "test_accuracy") == [last]
    table = texts(tmp_path / "logs", hparams.FINAL_METRICS_TAG)
    assert list(table) == [last]
    assert "| test_accuracy | 0.8750 |" in table[last]
    assert "| test_loss | 0.3100 |" in table[last]


def test_the_trained_runs_final_metrics_hparams_and_report_tables(trained_run):
    _, run_dir = trained_run
    last = EPOCHS[-1]
    assert steps_of(run_dir / "logs", "test_accuracy") == [last]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"| test_accuracy | {metrics['phase2']['test']['accuracy']:.4f} |" in \
        texts(run_dir / "logs", hparams.FINAL_METRICS_TAG)[last]
    logged = session_hparams(run_dir / "logs")
    assert "output_dir" not in logged and "run_name" not in logged
    assert logged["epochs"].number_value == E2E_PHASE1_EPOCHS
    tables = texts(run_dir / "logs" / "report", "report")
    assert sorted(tables) == [E2E_PHASE1_EPOCHS - 1, last]
    assert all("macro avg" in table and "Trouser" in table for table in tables.values())


CARD_PIXELS = 256  # Time Series' default image card shows a square image about this wide.


@pytest.mark.parametrize("diagonal, smallest_count_pixels", [(45, 9), (120, 7)])
def test_confusion_matrix_is_readable_at_tensorboard_card_size(diagonal, smallest_count_pixels):
    """Ten classes as TensorBoard's image card shows them (measured in a browser: ~256 pixels
    in Time Series, ~330 in Images): every count is at least `smallest_count_pixels` high there
    (2-digit counts as in a 50-per-class test split; 3-digit ones get a smaller font to fit)
    and inside its own cell, and the class names at least 7 pixels high."""
    names = sorted(path.name for path in (FASHION_MINI / "test").iterdir())
    confusion = np.full((10, 10), 3) + np.diag(np.full(10, diagonal))
    size = figures.confusion_pixels(len(names))
    shown = CARD_PIXELS / size  # The card scales the whole image down by this.
    figure = figures.confusion_matrix_figure(confusion, names, "phase2, test split")
    figure.canvas.draw()
    axes, renderer = figure.axes[0], figure.canvas.get_renderer()
    corners = axes.transData.transform([[0, 0], [1, 1]])
    cell_width, cell_height = np.abs(corners[1] - corners[0])
    assert len(axes.texts) == 100
    for text in axes.texts:
        box = text.get_window_extent(renderer)
        assert box.height * shown >= smallest_count_pixels, text.get_text()
        assert box.width < cell_width and box.height < cell_height, text.get_text()
    for label in axes.get_xticklabels() + axes.get_yticklabels():
        assert label.get_window_extent(renderer).height * shown >= 7, label.get_text()
    plt.close(figure)
    png = figures.confusion_matrix_png(confusion, names, "phase2, test split")
    assert tuple(tf.io.decode_png(png).shape) == (size, size, 4)
