"""Training options and their effects: momentum, label smoothing, schedules, class weights, and
a whole run with the best model exported and the accuracy gate."""

import json
import math
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import tlkeras.model.backbones  # noqa: F401  (registers BackbonePreprocessing for load_model)
from helpers import QUICKSTART, run_tlkeras, tensorboard_scalars
from tlkeras.errors import ConfigError
from tlkeras.model.losses import SmoothedSparseCrossentropy
from tlkeras.tasks.class_weights import class_weights
from tlkeras.training import phases
from tlkeras.training.schedules import PhaseSchedule, phase_learning_rate


def separable_data(seed=0, n=256, rare_share=0.5):
    """Two Gaussian classes in 2-D, overlapping a little; class 1 is `rare_share` of them."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < rare_share).astype(np.int64)
    points = rng.normal(size=(n, 2)).astype(np.float32) + 1.5 * labels[:, None]
    return points, labels


def small_classifier(seed=0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((2,))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))


def test_momentum_is_passed_to_optimizers_that_have_it_and_moves_further():
    sgd = phases.make_optimizer("optimizer", "sgd", 0.01, momentum=0.9)
    assert math.isclose(float(sgd.momentum), 0.9)
    assert isinstance(phases.make_optimizer("optimizer", "adam", 0.01, momentum=0.9),
                      keras.optimizers.Adam)  # Adam's momentum is its beta_1: left alone.
    phases.check_momentum(0.9, {"optimizer": "adam", "fine_tune_optimizer": "sgd"})
    with pytest.raises(ConfigError, match="^momentum: no phase's optimizer has a momentum"):
        phases.check_momentum(0.9, {"optimizer": "adam", "fine_tune_optimizer": "adamw"})
    points, labels = separable_data()
    losses = {}
    for momentum in (0.0, 0.9):
        model = small_classifier()
        model.compile(optimizer=phases.make_optimizer("optimizer", "sgd", 0.01, momentum),
                      loss="sparse_categorical_crossentropy")
        losses[momentum] = model.fit(points, labels, batch_size=32, epochs=3, shuffle=False,
                                     verbose=0).history["loss"][-1]
    # The same 24 steps of 0.01: with momentum 0.9 each step carries ~10x the gradient.
    assert losses[0.9] < losses[0.0] - 0.05, losses


def test_label_smoothing_matches_its_formula_and_keeps_the_model_less_certain():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    labels = np.array([0, 2])
    smoothing = 0.3
    targets = np.eye(3)[labels] * (1 - smoothing) + smoothing / 3
    expected = -(targets * np.log(probabilities)).sum(axis=1).mean()
    actual = float(SmoothedSparseCrossentropy(smoothing)(labels, probabilities))
    assert actual == pytest.approx(expected, rel=1e-5)  # float32 log of values >= 0.1.

    points, labels = separable_data(rare_share=0.5)
    points += 5 * labels[:, None]  # Separable: without smoothing the model grows certain.
    certainty = {}
    for smoothing in (0.0, 0.2):
        model = small_classifier()
        model.compile(optimizer=keras.optimizers.Adam(0.05),
                      loss=SmoothedSparseCrossentropy(smoothing))
        model.fit(points, labels, batch_size=32, epochs=30, verbose=0)
        certainty[smoothing] = float(np.median(model.predict(points, verbose=0).max(axis=1)))
    # Smoothing 0.2 makes 0.9 the target probability of the true class: the optimum.
    assert certainty[0.2] < 0.93 < certainty[0.0], certainty


def test_phase_schedule_warms_up_then_decays_to_zero():
    schedule = PhaseSchedule(0.1, warmup_steps=10, total_steps=110, cosine=True)
    values = [float(schedule(step)) for step in (0, 4, 9, 10, 60, 110)]
    assert values == pytest.approx([0.01, 0.05, 0.1, 0.1, 0.05, 0.0], abs=1e-7)
    constant = PhaseSchedule(0.1, warmup_steps=0, total_steps=100, cosine=False)
    assert float(constant(57)) == pytest.approx(0.1)
    assert phase_learning_rate(0.1, "constant", 0, 5, 30) == 0.1  # Nothing to schedule.
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(
        schedule))
    assert float(restored(60)) == pytest.approx(0.05)


def test_a_resumed_phase_continues_its_schedule(tmp_path):
    # The schedule is a function of the optimizer's step counter, which a backup saves.
    points, labels = separable_data()
    model = small_classifier()
    rate = phase_learning_rate(0.1, "cosine", 1, 4, steps_per_epoch=8)
    model.compile(optimizer=keras.optimizers.SGD(rate), loss="sparse_categorical_crossentropy")
    model.fit(points, labels, batch_size=32, epochs=2, verbose=0)
    model.save_weights(tmp_path / "backup.weights.h5")

    resumed = small_classifier(seed=1)
    resumed.compile(optimizer=keras.optimizers.SGD(phase_learning_rate(0.1, "cosine", 1, 4, 8)),
                    loss="sparse_categorical_crossentropy")
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.load_weights(tmp_path / "backup.weights.h5")
    assert int(resumed.optimizer.iterations) == 16
    assert float(resumed.optimizer.learning_rate) == pytest.approx(
        float(model.optimizer.learning_rate)) == pytest.approx(0.1 * 0.5 * (1 + math.cos(
            math.pi * 8 / 24)))


def test_auto_class_weights_balance_the_classes_and_lift_the_rare_ones(tmp_path):
    points, labels = separable_data(rare_share=0.1, n=400)
    batches = tf.data.Dataset.from_tensor_slices((points, labels)).batch(32)
    weights = class_weights("auto", ["common", "rare"], lambda: batches)
    counts = np.bincount(labels)
    assert weights == pytest.approx({0: 400 / (2 * counts[0]), 1: 400 / (2 * counts[1])})

    predicted_rare = {}
    for setting in (None, weights):
        model = small_classifier()
        model.compile(optimizer=keras.optimizers.Adam(0.05),
                      loss="sparse_categorical_crossentropy")
        model.fit(points, labels, batch_size=32, epochs=20, class_weight=setting, verbose=0)
        predicted = model.predict(points, verbose=0).argmax(axis=1)
        predicted_rare[setting is not None] = int((predicted[labels == 1] == 1).sum())
    # Unweighted, the overlap goes to the common class; weighted, most rare points are found.
    assert predicted_rare[True] > predicted_rare[False] + 5, predicted_rare

    (tmp_path / "weights.json").write_text(json.dumps({"common": 1, "rare": 4.5}))
    assert class_weights(str(tmp_path / "weights.json"), ["common", "rare"], None) == {
        0: 1.0, 1: 4.5}
    (tmp_path / "weights.json").write_text(json.dumps({"common": 1}))
    with pytest.raises(ConfigError, match="^class_weight: .* names \\['common'\\]"):
        class_weights(str(tmp_path / "weights.json"), ["common", "rare"], None)


def test_a_run_exports_its_best_model_and_fails_the_accuracy_gate_keeping_everything(
        tmp_path, weights_path, small_image_dir):
    # An imbalanced copy: one class keeps 5 of its 20 training images.
    image_dir = tmp_path / "images"
    shutil.copytree(small_image_dir, image_dir)
    for image in sorted((image_dir / "train" / "Bag").iterdir())[5:]:
        image.unlink()
    process = run_tlkeras(
        f"--flagfile={QUICKSTART}", f"--weights={weights_path}", f"--image_dir={image_dir}",
        f"--output_dir={tmp_path / 'runs'}", "--run_name=run", "--image_size=32", "--epochs=3",
        "--fine_tune_epochs=3", "--class_weight=auto", "--label_smoothing=0.1",
        "--lr_schedule=cosine", "--warmup_epochs=1", "--fine_tune_optimizer=sgd",
        "--fine_tune_learning_rate=0.01", "--momentum=0.9", "--min_test_accuracy=0.99")
    assert process.returncode == 6, process.stderr[-3000:]
    message = process.stderr.strip().splitlines()[-1]
    assert message.startswith("tlkeras: accuracy gate missed: the final test accuracy ")
    assert "below --min_test_accuracy=0.99" in message and "Traceback" not in process.stderr

    run_dir = tmp_path / "runs" / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and (run_dir / "export" / "1").is_dir()
    accuracy = metrics["phase2"]["test"]["accuracy"]
    assert f"{accuracy:.4f} is {0.99 - accuracy:.4f} below" in message
    # auto: Bag has ~5 training images against ~18 for the others, so ~3.6x their weight.
    weights = metrics["class_weight"]
    assert max(weights, key=weights.get) == "Bag" and weights["Bag"] > 2.5 * min(weights.values())
    # The export is the best checkpoint by validation accuracy over both phases (the first
    # epoch reaching the maximum: Keras' ModelCheckpoint saves only on a strict improvement).
    history = metrics["phase1"]["history"]["val_accuracy"] + \
        metrics["phase2"]["history"]["val_accuracy"]
    assert metrics["export_model"] == {"choice": "best", "epoch": history.index(max(history)) + 1,
                                       "val_accuracy": pytest.approx(max(history))}
    # SGD with momentum 0.9 at this rate overshoots on 32 px images (validation accuracy fell
    # from 0.44 to 0.06-0.11 here): the exported model is phase 1's, not the last epoch's.
    assert metrics["export_model"]["epoch"] <= 3
    best = keras.models.load_model(run_dir / "checkpoints" / "best.keras")
    final = keras.models.load_model(run_dir / "model.keras")
    for expected, actual in zip(best.get_weights(), final.get_weights(), strict=True):
        np.testing.assert_array_equal(actual, expected)
    # Each phase warms up for its first epoch, then decays to 0 by its last (TensorBoard logs
    # the rate at each epoch's end, on the shared axis: phase 2 is epochs 3-5).
    rates = tensorboard_scalars(run_dir, "train")["epoch_learning_rate"]
    assert rates[3] == pytest.approx(0.01) and rates[5] < 1e-8
    assert rates[0] == pytest.approx(1e-3, rel=1e-4) and rates[2] < 1e-10  # Phase 1: 1e-3.
