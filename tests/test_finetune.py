"""Phase 1 leaves the backbone untouched; phase 2 changes only unfrozen non-BN layers.

Runs tlkeras' own phase function (`phases.fit`) on real images, comparing every
weight, BatchNormalization moving statistics included, before and after each phase.
"""

import keras
import numpy as np
import pytest

from tlkeras import data
from tlkeras.config import Config
from tlkeras.data.sources import LABEL_CLASSES
from tlkeras.model import backbones, finetune
from tlkeras.model.network import build_augmentation
from tlkeras.tasks.classification import Classification
from tlkeras.training import phases

UNFROZEN = 25


def snapshot(model: keras.Model) -> dict:
    """{(layer name, weight path): value} for every weight, trainable or not."""
    return {(layer.name, weight.path): weight.numpy()
            for layer in model.layers for weight in layer.weights}


def changed(before: dict, after: dict) -> set:
    return {key for key in before if not np.array_equal(before[key], after[key])}


@pytest.fixture(scope="module")
def setup(small_image_dir, weights_path):
    config = Config.of(image_dir=str(small_image_dir), weights=str(weights_path), image_size=64,
                       batch_size=16, unfreeze=str(UNFROZEN), augment_flip=True)
    splits = data.load(config.data, LABEL_CLASSES, config.runtime.seed, config.model.image_size)
    backbone = backbones.build_backbone(backbones.get_spec("MobileNetV2"), 64,
                                        config.model.weights)
    model = Classification(splits.output_names).build_model(backbone, "MobileNetV2", 0.2,
                                                            build_augmentation(True, 0.1))
    return config, splits, backbone, model


def run_phase(model, splits, name, learning_rate, first_epoch):
    phase = phases.Phase(name, first_epoch, 1, keras.optimizers.Adam(learning_rate),
                         Classification(splits.output_names))
    return phases.fit(model, splits.train, splits.validation, phase, callbacks=[])


def test_phase1_changes_only_the_head_and_phase2_only_unfrozen_non_bn(setup):
    config, splits, backbone, model = setup
    finetune.freeze(backbone)
    start = snapshot(backbone)
    head_start = model.get_layer("probabilities").get_weights()[0].copy()
    run_phase(model, splits, "phase1", 1e-3, 0)
    assert changed(start, snapshot(backbone)) == set()
    assert not np.array_equal(head_start, model.get_layer("probabilities").get_weights()[0])

    plan = finetune.plan_unfreeze(backbone, config.phase2.unfreeze)
    finetune.unfreeze_top(backbone, plan)
    layers = finetune.backbone_layers(backbone)
    top = {layer.name for layer in layers[-UNFROZEN:]}
    batch_norm = {layer.name for layer in layers
                  if isinstance(layer, keras.layers.BatchNormalization)}
    expected_to_change = {key for key in start if key[0] in top - batch_norm}
    assert expected_to_change, "the unfrozen top should hold trainable non-BN weights"

    run_phase(model, splits, "phase2", 1e-3, 1)
    assert changed(start, snapshot(backbone)) == expected_to_change
    bn_keys = {key for key in start if key[0] in batch_norm}
    assert any("moving_mean" in key[1] for key in bn_keys)
    assert changed(start, snapshot(backbone)) & bn_keys == set()


def test_unfreeze_choices_resolve_to_layer_counts(setup):
    _, _, backbone, _ = setup
    layers = finetune.backbone_layers(backbone)
    by_name = finetune.plan_unfreeze(backbone, layers[-10].name)
    assert (by_name.count, by_name.first_layer) == (10, layers[-10].name)
    assert finetune.plan_unfreeze(backbone, "0.5").count == round(0.5 * len(layers))
    whole = finetune.plan_unfreeze(backbone, "1.0")
    assert (whole.count, whole.first_layer) == (len(layers), layers[0].name)
    assert finetune.plan_unfreeze(backbone, "1").first_layer == layers[-1].name
