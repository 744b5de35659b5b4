"""Tasks own their heads, losses, serving outputs and output comparisons."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlkeras.config import Config
from tlkeras.data import DataSplits
from tlkeras.tasks import make_task
from tlkeras.tasks.classification import Classification
from tlkeras.tasks.regression import Regression

CLASSES = ["cat", "dog", "fox"]


def splits(output_names, train_targets=None) -> DataSplits:
    return DataSplits(train=None, validation=None, test=None, output_names=output_names,
                      sizes={}, images_cached=False, batch_size=2, skipped_files=[],
                      train_targets=train_targets)


def test_registry_makes_the_configured_task():
    assert isinstance(make_task(Config.of(image_dir="x"), splits(CLASSES)), Classification)
    targets = np.array([[1.0, 10.0], [3.0, 10.0]], np.float32)
    regression = make_task(Config.of(image_dir="x", task="regression",
                                     regression_loss="huber"), splits(["a", "b"], targets))
    assert isinstance(regression, Regression) and regression.loss == "huber"
    np.testing.assert_array_equal(regression.mean, [2.0, 10.0])
    np.testing.assert_array_equal(regression.std, [1.0, 1.0])  # A constant target gets 1.


def test_classifier_serving_outputs_name_the_top_classes():
    probabilities = tf.constant([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    outputs = Classification(CLASSES).serving_outputs(probabilities, top_k=2)
    assert outputs["class_names"].numpy().tolist() == [b"dog", b"cat"]
    assert outputs["top_k_class_names"].numpy().tolist() == [[b"dog", b"fox"], [b"cat", b"fox"]]
    assert outputs["top_k_class_ids"].dtype == tf.int64
    assert Classification(CLASSES).serving_outputs(probabilities, 9)["top_k_scores"].shape[1] == 3


def test_output_comparisons():
    expected = np.array([[0.9, 0.1], [0.4, 0.6]])
    actual = np.array([[0.8, 0.2], [0.6, 0.4]])
    assert Classification(["a", "b"]).compare_outputs(expected, actual) == pytest.approx(
        {"max_abs_diff": 0.2, "top1_agreement": 0.5})
    assert Regression(["t"], [0.0], [1.0]).compare_outputs(expected, actual) == pytest.approx(
        {"max_abs_diff": 0.2})


def test_regression_head_starts_at_the_training_mean_in_original_units():
    task = Regression(["brightness", "ink"], np.array([100.0, 0.5]), np.array([20.0, 0.1]))
    features = keras.Input(shape=(8,))
    head = keras.Model(features, task.build_head(features))
    # The Dense layer's bias starts at 0 (the normalised mean); a zero feature vector
    # therefore predicts exactly the mean, undone into the targets' own units.
    np.testing.assert_allclose(head.predict(np.zeros((1, 8)), verbose=0), [[100.0, 0.5]],
                               rtol=1e-6)  # One float32 multiply-add: a few roundings.
    assert task.summary()["target_std"] == pytest.approx([20.0, 0.1])
