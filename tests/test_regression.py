"""--task=regression: real images, real known targets, both phases, export in original units.

The targets are two exact properties of real Fashion-MNIST images, mean brightness (0-255) and ink
fraction (0-1), committed beside the images by tools/make_regression_targets.py. A model that
learns beats predicting the training mean by far; one that forgets to undo the normalisation
predicts numbers near 0.
"""

import csv
import json
import os
import textwrap

import keras
import numpy as np
import pytest
from PIL import Image

import tlkeras.model.network  # noqa: F401  (registers tlkeras' layer and losses for load_model)
from helpers import (
    FASHION_MINI,
    FLOAT32_REORDERED,
    QUICKSTART,
    assert_close_at_scale,
    run_command,
    run_module,
    run_tlkeras,
)
from helpers import tensorboard_scalars as scalars
from tlkeras.model import losses

TARGETS = ["mean_brightness", "ink_fraction"]

# A fresh interpreter with only TensorFlow: the export's served predictions for image files.
SERVE_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    export_dir, *files = sys.argv[1:]
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    outputs = serve(image_bytes=tf.constant([open(f, "rb").read() for f in files]))
    print(json.dumps({"outputs": sorted(outputs),
                      "predictions": outputs["predictions"].numpy().tolist(),
                      "tlkeras_imported": any(m.startswith("tlkeras") for m in sys.modules)}))
""")


def committed_targets(split: str) -> dict[str, list[float]]:
    with open(FASHION_MINI / f"{split}.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["path", *TARGETS]
    return {row[0]: [float(value) for value in row[1:]] for row in rows[1:]}


@pytest.fixture(scope="module")
def regression_run(weights_path, tmp_path_factory):
    """The quickstart's data (2,000 + 500 images with their committed CSVs), shorter and smaller."""
    output_dir = tmp_path_factory.mktemp("runs")
    process = run_tlkeras(f"--flagfile={QUICKSTART}", f"--weights={weights_path}",
                          f"--output_dir={output_dir}", "--run_name=regression",
                          "--task=regression", "--image_size=64", "--epochs=10",
                          "--fine_tune_epochs=1", "--export_tflite=float32")
    assert process.returncode == 0, process.stderr[-5000:]
    return process, output_dir / "regression", FASHION_MINI


def test_committed_targets_are_the_images_true_properties():
    for split in ("train", "test"):
        for relative, (brightness, ink) in list(committed_targets(split).items())[::97]:
            pixels = np.asarray(Image.open(FASHION_MINI / split / relative).convert("L"),
                                dtype=float)
            # The CSV keeps 4 decimals: rounding leaves at most 5e-5, within one last decimal.
            assert brightness == pytest.approx(pixels.mean(), abs=1e-4)
            assert ink == pytest.approx((pixels > 25).mean(), abs=1e-4)


@pytest.mark.slow  # Default tier budget: see README "Tests".
def test_model_learns_far_better_than_predicting_the_mean(regression_run):
    process, run_dir, _ = regression_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == "regression" and metrics["target_names"] == TARGETS
    losses_phase1 = metrics["phase1"]["history"]["loss"]
    assert losses_phase1[-1] < 0.5 * losses_phase1[0]
    for phase in ("phase1", "phase2"):
        report = json.loads((run_dir / "report" / phase / "report.json").read_text())
        for name in TARGETS:
            target = report["per_target"][name]
            assert target["mae"] < 0.6 * target["baseline_mae"], (phase, name, target)
            assert target["r2"] > 0.5, (phase, name, target)
        assert {"loss", "mae", "rmse"} <= set(metrics[phase]["test"])
    assert "phase2 test mae:" in process.stdout
    assert (run_dir / "report" / "phase2" / "predicted_vs_true.png").is_file()
    assert (run_dir / "labels.txt").read_text().split() == TARGETS


@pytest.mark.slow  # Default tier budget: see README "Tests".
def test_tensorboard_logs_loss_mae_and_rmse_for_both_phases(regression_run):
    _, run_dir, _ = regression_run
    for split in ("train", "validation"):
        logged = scalars(run_dir, split)
        for tag in ("epoch_loss", "epoch_mae", "epoch_rmse"):
            assert sorted(logged[tag]) == list(range(11)), (split, tag)  # 10 + 1 epochs.
    train_mae = scalars(run_dir, "train")["epoch_mae"]
    assert train_mae[9] < train_mae[0]


@pytest.mark.slow  # Default tier budget: see README "Tests".
def test_report_agrees_with_an_independent_computation(regression_run):
    _, run_dir, regression_dir = regression_run
    model = keras.models.load_model(run_dir / "model.keras")
    truth = committed_targets("test")
    files = sorted((regression_dir / "test").glob("*/*.png"))
    pixels = np.stack([keras.ops.convert_to_numpy(keras.ops.image.resize(
        np.asarray(Image.open(f).convert("RGB"), np.float32), (64, 64))) for f in files])
    predicted = model.predict(pixels, verbose=0)
    true = np.array([truth[f.relative_to(regression_dir / "test").as_posix()] for f in files])
    report = json.loads((run_dir / "report" / "phase2" / "report.json").read_text())
    train_mean = np.array(json.loads((run_dir / "metrics.json").read_text())["target_mean"])
    for index, name in enumerate(TARGETS):
        # Same pixels and weights in other batches and compiled functions: each prediction, so
        # the MAE too, moves by float32 reordering at the scale of the target's predictions.
        assert report["per_target"][name]["mae"] == pytest.approx(
            np.abs(predicted[:, index] - true[:, index]).mean(),
            abs=FLOAT32_REORDERED * float(np.abs(predicted[:, index]).max()))
        # The report's float32 targets and sums against float64 here: the same values up to
        # float32 roundings, far fewer than FLOAT32_REORDERED relative to the MAE.
        assert report["per_target"][name]["baseline_mae"] == pytest.approx(
            np.abs(true[:, index] - train_mean[index]).mean(), rel=FLOAT32_REORDERED)


@pytest.mark.slow  # Default tier budget: see README "Tests".
def test_checkpoint_and_export_predict_in_the_original_units(regression_run):
    process, run_dir, regression_dir = regression_run
    files = [str(path) for path in sorted((regression_dir / "test").glob("*/*.png"))[::25]]
    served = run_command(["-c", SERVE_SCRIPT, str(run_dir / "export" / "1"), *files],
                         timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]
    result = json.loads(served.stdout.strip().splitlines()[-1])
    assert result["outputs"] == ["predictions"] and not result["tlkeras_imported"]
    predictions = np.array(result["predictions"])
    model = keras.models.load_model(run_dir / "model.keras")
    pixels = np.stack([keras.ops.convert_to_numpy(keras.ops.image.resize(
        np.asarray(Image.open(f).convert("RGB"), np.float32), (64, 64))) for f in files])
    expected = model.predict(pixels, verbose=0)
    for index, name in enumerate(TARGETS):
        # The same float32 model traced in the SavedModel: equal up to reordering, at the scale
        # of each target's own predictions (brightness in the tens, ink fraction below 1).
        assert_close_at_scale(predictions[:, index], expected[:, index], err_msg=name)
    best = keras.models.load_model(run_dir / "checkpoints" / "best.keras")
    # best.keras may hold an earlier epoch: its mean prediction stays within 20% of the final
    # model's, where one left in normalised units (mean ~0, spread ~1) would be off by ~100%.
    np.testing.assert_allclose(best.predict(pixels, verbose=0).mean(axis=0),
                               predictions.mean(axis=0), rtol=0.2)
    # In the original units: brightness in the tens, ink fraction between 0 and 1.
    assert 20 < predictions[:, 0].mean() < 150 and 0.1 < predictions[:, 1].mean() < 0.9
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # TFLite float32 reorders the computation: ~1e-4 of predictions of at most 255, far below 1%
    # of the widest target's spread, which a lost or doubled de-normalisation would exceed.
    assert metrics["tflite"]["float32"]["max_abs_diff"] < 1e-2 * max(metrics["target_std"])


@pytest.mark.slow  # Default tier budget: see README "Tests".
def test_predict_cli_prints_named_targets(regression_run):
    _, run_dir, regression_dir = regression_run
    image = sorted((regression_dir / "test" / "Bag").iterdir())[0]
    process = run_module("predict", f"--model={run_dir / 'export'}", "--json", str(image),
                         timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    line = json.loads(process.stdout.strip().splitlines()[-1])
    assert sorted(line["predictions"]) == sorted(TARGETS)


def test_scaled_loss_is_mse_of_standardised_targets():
    y_true = np.array([[100.0, 0.5], [40.0, 0.2]], np.float32)
    y_pred = np.array([[90.0, 0.45], [60.0, 0.3]], np.float32)
    scale = (20.0, 0.1)
    expected = np.mean(np.square((y_true - y_pred) / np.array(scale)))
    loss = losses.ScaledRegressionLoss("mse", scale)
    # float32 arithmetic on 4 values against float64: a handful of roundings (6e-8 each)
    # relative to the loss; 1e-6 is ~16 of them, and a wrong scale is off by far more.
    assert float(loss(y_true, y_pred)) == pytest.approx(expected, rel=1e-6)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert float(restored(y_true, y_pred)) == pytest.approx(expected, rel=1e-6)
    huber = float(losses.ScaledRegressionLoss("huber", scale)(y_true, y_pred))
    errors = np.abs((y_true - y_pred) / np.array(scale))
    assert huber == pytest.approx(np.mean(np.where(errors <= 1, 0.5 * errors ** 2,
                                                   errors - 0.5)), rel=1e-6)


def test_missing_or_malformed_targets_csv_is_a_clear_error(weights_path, tmp_path):
    broken = tmp_path / "images"
    broken.mkdir()
    for split in ("train", "test"):
        os.symlink(FASHION_MINI / split, broken / split)
    flags = (f"--flagfile={QUICKSTART}", f"--weights={weights_path}", f"--image_dir={broken}",
             f"--output_dir={tmp_path / 'runs'}", "--run_name=bad", "--task=regression")
    process = run_tlkeras(*flags)
    assert process.returncode == 2 and "Traceback" not in process.stderr
    assert process.stderr.strip().splitlines()[-1].startswith(
        "tlkeras: error: --train_split: --task=regression needs the targets file")
    (broken / "train.csv").write_text("path,mean_brightness\nBag/00018.png,not-a-number\n")
    process = run_tlkeras(*flags)
    message = process.stderr.strip().splitlines()[-1]
    assert process.returncode == 2 and "train.csv, line 2" in message, process.stderr[-2000:]
    assert not (tmp_path / "runs" / "bad").exists()


@pytest.mark.slow  # Default tier budget: see README "Tests".
def test_evaluate_entry_refuses_a_regression_export_clearly(regression_run, tmp_path):
    _, run_dir, _ = regression_run
    process = run_module("evaluate", f"--model={run_dir / 'export'}",
                         f"--image_dir={FASHION_MINI}", f"--report_dir={tmp_path / 'report'}",
                         timeout=300)
    assert process.returncode == 2 and "Traceback" not in process.stderr
    assert "is a regression export" in process.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "report").exists()
