"""The best checkpoint holds only finite models, written whole, and knows which epoch it is."""

import math
import zipfile

import keras
import numpy as np

from tlkeras.training.checkpoint import BestCheckpoint, finite_weights


def small_model() -> keras.Model:
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))


def test_a_nan_model_with_a_better_score_never_replaces_the_best(tmp_path):
    # A NaN model predicts class 0 everywhere: its val_accuracy is class 0's share, a finite
    # number that can beat the real model's (the reproduction: --fine_tune_learning_rate=inf).
    model = small_model()
    path = tmp_path / "checkpoints" / "best.keras"
    best = BestCheckpoint(model, str(path), monitor="val_accuracy", mode="max")
    best.set_model(model)
    best.on_train_begin()
    best.on_epoch_end(0, {"val_accuracy": 0.30})
    good = [weight.copy() for weight in model.get_weights()]
    assert best.best_epoch == 1 and path.exists()

    kernel = model.layers[-1].kernel
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    assert not finite_weights(model)
    best.on_epoch_end(1, {"val_accuracy": 0.34})  # Class 0's share beats 0.30.
    best.on_epoch_end(2, {"val_accuracy": math.nan})

    assert best.best_epoch == 1 and best.best == 0.30
    assert "epoch 1, val_accuracy 0.3000" in best.kept_note()
    saved = keras.models.load_model(path)
    for expected, actual in zip(good, saved.get_weights(), strict=True):
        np.testing.assert_array_equal(actual, expected)
    assert list(path.parent.iterdir()) == [path]  # No temporary file left beside it.


def test_an_improving_finite_model_is_written_whole(tmp_path):
    model = small_model()
    path = tmp_path / "best.keras"
    best = BestCheckpoint(model, str(path), monitor="val_loss", mode="min")
    best.set_model(model)
    best.on_train_begin()
    best.on_epoch_end(4, {"val_loss": 1.0})
    model.layers[-1].bias.assign(np.ones(3, np.float32))
    best.on_epoch_end(5, {"val_loss": 0.5})
    assert best.best_epoch == 6
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
    np.testing.assert_array_equal(keras.models.load_model(path).layers[-1].bias.numpy(),
                                  np.ones(3))
