"""Resume: a phase stopped after an epoch and started again in a new model ends where an
uninterrupted phase ends (weights, optimizer state, random-seed states, data order, history)."""

import keras
import numpy as np
import pytest

from tlkeras import data
from tlkeras.config import Config
from tlkeras.data.sources import LABEL_CLASSES
from tlkeras.model import backbones, finetune
from tlkeras.model.network import build_augmentation
from tlkeras.tasks.classification import Classification
from tlkeras.training import feature_cache, phases, resume
from tlkeras.training.checkpoint import BestCheckpoint

IMAGE_SIZE = 32
EPOCHS = 3


@pytest.fixture(scope="module")
def config(small_image_dir, weights_path):
    return Config.of(image_dir=str(small_image_dir), weights=str(weights_path),
                     image_size=IMAGE_SIZE, batch_size=16, dropout=0.5, seed=3)


def fit_in_new_process(config, backup_dir, epochs, on_features, boundary=False):
    """What one process does: build everything from the seed, restore any backup, fit.

    `boundary`: phase 2 (top 20 layers unfrozen) on cached frozen-boundary activations.
    """
    keras.utils.set_random_seed(config.runtime.seed)
    splits = data.load(config.data, LABEL_CLASSES, config.runtime.seed, IMAGE_SIZE)
    backbone = backbones.build_backbone(backbones.get_spec("MobileNetV2"), IMAGE_SIZE,
                                        config.model.weights)
    task = Classification(splits.output_names)
    # Random flips and translations: their seed states must be restored too.
    model = task.build_model(backbone, "MobileNetV2", config.model.dropout,
                             None if on_features else build_augmentation(True, 0.1))
    finetune.freeze(backbone)
    if boundary:
        finetune.unfreeze_top(backbone, finetune.plan_unfreeze(backbone, "20"))
    checkpoint = BestCheckpoint(model, str(backup_dir / "best.keras"), monitor=task.monitor,
                                mode=task.monitor_mode)
    backups = resume.Backups(str(backup_dir / "resume"), checkpoint)
    phase = phases.Phase("phase1", 0, epochs, keras.optimizers.Adam(1e-2), task)
    if boundary:
        phase = phases.Phase("phase2", 0, epochs, keras.optimizers.Adam(1e-3), task)
        result = phases.fit_on_cached(feature_cache.frozen_boundary(model, backbone), splits,
                                      phase, [checkpoint], backups,
                                      str(backup_dir / "boundary_cache"),
                                      config.data.cache_memory_mb)
    elif on_features:
        result = phases.fit_on_cached_features(model, splits, phase, [checkpoint], backups,
                                               str(backup_dir / "feature_cache"),
                                               config.data.cache_memory_mb)
    else:
        result = phases.fit(model, splits.train, splits.validation, phase, [checkpoint], backups)
    return model, result, backups


@pytest.mark.parametrize("on_features, boundary", [
    pytest.param(False, False, marks=pytest.mark.slow),  # The slow tier: see README "Tests".
    (True, False), pytest.param(True, True, marks=pytest.mark.slow)],
    ids=["images", "cached-features", "phase2-boundary-cache"])
def test_resumed_phase_ends_with_the_uninterrupted_weights_and_history(config, tmp_path,
                                                                       on_features, boundary):
    model, result, _ = fit_in_new_process(config, tmp_path / "whole", EPOCHS, on_features,
                                          boundary)

    # "Killed" after epoch 1: a new model, pipeline and optimizer pick up from the backup (a
    # resumed phase on cached activations computes them again first).
    _, first_part, backups = fit_in_new_process(config, tmp_path / "parts", 1, on_features,
                                                boundary)
    assert backups.latest()["record"]["epochs_done"] == 1
    resumed, rest, resumed_backups = fit_in_new_process(config, tmp_path / "parts", EPOCHS,
                                                         on_features, boundary)

    assert len(result["history"]["loss"]) == EPOCHS
    assert rest["history"] == result["history"]  # Epoch 1 kept, epochs 2-3 the same.
    assert len(rest["epoch_seconds"]) == EPOCHS
    # Exact: the restored weights and optimizer state are the saved float32 values, and epochs
    # 2-3 run the same steps on the same batches with the same kernels as the uninterrupted run.
    for expected, actual in zip(model.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(actual.numpy(), expected.numpy(), err_msg=expected.path)
    # The best checkpoint's score spans the restart.
    assert float(resumed_backups.checkpoint.best) == max(result["history"]["val_accuracy"])


def test_a_finished_phase_is_not_trained_again(config, tmp_path):
    model, result, _ = fit_in_new_process(config, tmp_path, 1, on_features=True)
    again, repeat, _ = fit_in_new_process(config, tmp_path, 1, on_features=True)
    assert repeat["history"] == result["history"]
    for expected, actual in zip(model.weights, again.weights, strict=True):
        np.testing.assert_array_equal(actual.numpy(), expected.numpy())
