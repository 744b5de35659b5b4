"""Evaluation report: numbers agree with an independent computation, figures decode at their
size, TensorBoard holds the images and hparams, and `tlkeras evaluate` reproduces the report."""

import json

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import E2E_PHASE1_EPOCHS, E2E_PHASE2_EPOCHS, FASHION_MINI, run_module, run_tlkeras
from tlkeras.reporting import classification as report
from tlkeras.reporting import figures


def independent_report(labels, probabilities, classes, k):
    """Plain loops over the examples, sharing nothing with tlkeras.reporting."""
    predicted = [int(np.argmax(p)) for p in probabilities]
    confusion = [[0] * classes for _ in range(classes)]
    for true, guess in zip(labels, predicted, strict=True):
        confusion[true][guess] += 1
    per_class = []
    for c in range(classes):
        true_positives = confusion[c][c]
        predicted_c = sum(confusion[r][c] for r in range(classes))
        support = sum(confusion[c])
        precision = true_positives / predicted_c if predicted_c else 0.0
        recall = true_positives / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append((precision, recall, f1, support))
    top_k = sum(true in sorted(range(classes), key=lambda c: -p[c])[:k]
                for true, p in zip(labels, probabilities, strict=True)) / len(labels)
    return confusion, per_class, top_k


def test_report_agrees_with_an_independent_computation():
    rng = np.random.default_rng(0)
    classes, k = 6, 3
    labels = rng.integers(0, classes, 300)
    probabilities = rng.dirichlet(np.ones(classes), 300)
    probabilities[:, 5] = 0  # Class 5 is never predicted: precision 0, not a division error.
    probabilities[labels == 1, 1] += 0.5  # Some signal, so the averages differ.
    names = [f"class{c}" for c in range(classes)]
    result = report.classification_report(labels, probabilities, names, k)

    confusion, per_class, top_k = independent_report(labels, probabilities, classes, k)
    # Ratios of counts in float64 on both sides, summed in other orders: pytest.approx's default
    # rel=1e-6 is ~1e10 float64 roundings, and a wrong count moves a ratio by >= 1/300.
    assert result["confusion_matrix"] == confusion
    for name, (precision, recall, f1, support) in zip(names, per_class, strict=True):
        assert result["per_class"][name] == pytest.approx(
            {"precision": precision, "recall": recall, "f1": f1, "support": support})
    assert result["per_class"]["class5"]["precision"] == 0.0
    supports = [row[3] for row in per_class]
    for index, key in enumerate(("precision", "recall", "f1")):
        values = [row[index] for row in per_class]
        assert result["macro_avg"][key] == pytest.approx(sum(values) / classes)
        assert result["weighted_avg"][key] == pytest.approx(
            sum(v * s for v, s in zip(values, supports, strict=True)) / sum(supports))
    assert result["accuracy"] == pytest.approx(
        sum(confusion[c][c] for c in range(classes)) / 300)
    assert result["top_3_accuracy"] == pytest.approx(top_k)
    table = report.format_table(result, "title")
    assert "class4" in table and "macro avg" in table and "top-3-accuracy" in table


def png_shape(path):
    return tuple(tf.io.decode_png(tf.io.read_file(str(path))).shape)


@pytest.mark.parametrize("phase", ["phase1", "phase2"])
def test_each_phase_writes_a_report_matching_the_test_metrics(trained_run, phase):
    _, run_dir = trained_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    written = json.loads((run_dir / "report" / phase / "report.json").read_text())
    assert written["examples"] == 500 and len(written["per_class"]) == 10
    # Same model, same test images as Keras' model.evaluate: the same accuracy. Accuracies are
    # at scale 1 and Keras accumulates them in float32: 1e-6 is ~17 roundings, one image 2e-3.
    assert written["accuracy"] == pytest.approx(metrics[phase]["test"]["accuracy"], abs=1e-6)
    assert written["top_5_accuracy"] >= written["accuracy"]
    assert metrics[phase]["report"]["macro_f1"] == written["macro_avg"]["f1"]
    size = figures.confusion_pixels(10)
    assert png_shape(run_dir / "report" / phase / "confusion_matrix.png") == (size, size, 4)
    cell = figures.GRID_CELL_INCHES * figures.DPI
    wrong = sum(written["per_class"][n]["support"] for n in written["class_names"]) - \
        round(written["accuracy"] * 500)
    rows = -(-min(wrong, report.MAX_MISCLASSIFIED) // figures.GRID_COLUMNS)
    assert png_shape(run_dir / "report" / phase / "misclassified.png") == \
        (rows * cell, figures.GRID_COLUMNS * cell, 4)


def summaries(log_dir):
    accumulator = EventAccumulator(str(log_dir), size_guidance={"images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_has_report_images_after_each_phase_and_the_runs_hparams(trained_run):
    _, run_dir = trained_run
    images = summaries(run_dir / "logs" / "report")
    phase_ends = [E2E_PHASE1_EPOCHS - 1, E2E_PHASE1_EPOCHS + E2E_PHASE2_EPOCHS - 1]
    for tag in ("confusion_matrix", "misclassified"):
        events = images.Tensors(tag)
        assert [event.step for event in events] == phase_ends
        width, height = (int(v) for v in tf.make_ndarray(events[0].tensor_proto)[:2])
        assert width > 0 and height > 0

    root = summaries(run_dir / "logs")
    plugin_data = root.PluginTagToContent("hparams")
    assert plugin_data, "no hparams summary"
    from tensorboard.plugins.hparams import plugin_data_pb2

    session = plugin_data_pb2.HParamsPluginData.FromString(
        plugin_data["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["backbone"].string_value == "MobileNetV2"
    assert session.hparams["fine_tune_epochs"].number_value == E2E_PHASE2_EPOCHS
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test_accuracy = tf.make_ndarray(root.Tensors("test_accuracy")[0].tensor_proto).item()
    # The summary stores the accuracy (scale 1) as float32: one rounding, 6e-8, within rel=1e-6.
    assert test_accuracy == pytest.approx(metrics["phase2"]["test"]["accuracy"], rel=1e-6)


def test_evaluate_reproduces_the_report_from_the_savedmodel(trained_run, tmp_path):
    _, run_dir = trained_run
    flags = [f"--model={run_dir / 'export'}", f"--image_dir={FASHION_MINI}", "--split=test",
             f"--report_dir={tmp_path / 'r'}"]
    process = run_module("evaluate", *flags, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    again = json.loads((tmp_path / "r" / "report.json").read_text())
    during_training = json.loads((run_dir / "report" / "phase2" / "report.json").read_text())
    assert again["class_names"] == during_training["class_names"]
    # The SavedModel's float results may flip a near-tie; allow one example in 500 (a count).
    assert again["accuracy"] == pytest.approx(during_training["accuracy"], abs=1 / 500)
    differences = np.abs(np.array(again["confusion_matrix"]) -
                         np.array(during_training["confusion_matrix"])).sum()
    assert differences <= 2
    size = figures.confusion_pixels(10)
    assert png_shape(tmp_path / "r" / "confusion_matrix.png")[:2] == (size, size)

    refused = run_module("evaluate", *flags, timeout=300)
    assert refused.returncode == 2
    assert "--report_dir" in refused.stderr and "never overwritten" in refused.stderr

    # evaluate takes only its own flags: a training flag is absl's unknown-flag error.
    training_flag = run_module("evaluate", *flags[:3], f"--report_dir={tmp_path / 'r2'}",
                               "--epochs=3", timeout=300)
    assert training_flag.returncode != 0
    assert "Unknown command line flag 'epochs'" in training_flag.stderr
    assert not (tmp_path / "r2").exists()


def test_list_backbones_and_grouped_help():
    listing = run_tlkeras("--list_backbones")
    assert listing.returncode == 0, listing.stderr[-2000:]
    rows = {line.split()[0]: line.split()[1:] for line in listing.stdout.splitlines()[1:]}
    assert len(rows) == 40 and rows["MobileNetV2"] == ["224", "2,257,984"]
    assert rows["EfficientNetV2S"][0] == "384"
    help_text = run_tlkeras("--helpfull").stdout
    groups = ["tlkeras (1) data:", "tlkeras (2) model:", "tlkeras (3) phase 1",
              "tlkeras (4) phase 2", "tlkeras (5) training (both phases):",
              "tlkeras (6) knowledge distillation:", "tlkeras (7) export:",
              "tlkeras (8) outputs and runtime:"]
    positions = [help_text.index(group) for group in groups]
    assert positions == sorted(positions)
    phase2 = help_text[positions[3]:positions[4]]
    assert "--fine_tune_learning_rate" in phase2 and "--unfreeze" in phase2
    assert "--image_dir" not in phase2
    assert "--lr_schedule" in help_text[positions[4]:positions[5]]
    assert "--distill_temperature" in help_text[positions[5]:positions[6]]
