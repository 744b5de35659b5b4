"""Phase 1 on cached features: same features as the backbone, head shared with the full model."""

import os

import keras
import numpy as np
import pytest

from helpers import assert_close_at_scale
from tlkeras import data
from tlkeras.config import Config
from tlkeras.data.sources import LABEL_CLASSES
from tlkeras.model import backbones
from tlkeras.model.network import FEATURE_LAYER
from tlkeras.tasks.classification import Classification
from tlkeras.training import feature_cache


@pytest.fixture(scope="module")
def model_and_splits(small_image_dir, weights_path):
    config = Config.of(image_dir=str(small_image_dir), weights=str(weights_path), batch_size=16,
                       image_size=64)
    splits = data.load(config.data, LABEL_CLASSES, config.runtime.seed, 64)
    backbone = backbones.build_backbone(backbones.get_spec("MobileNetV2"), 64,
                                        config.model.weights)
    model = Classification(splits.output_names).build_model(backbone, "MobileNetV2", 0.2)
    extractor = keras.Model(model.input, model.get_layer(FEATURE_LAYER).output)
    return config, splits, model, extractor


def collect(dataset):
    features, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    return np.concatenate(features), np.concatenate(labels)


@pytest.mark.parametrize("memory_mb, on_disk", [(2048, False), (0, True)])
def test_cached_features_are_the_backbone_features_in_memory_or_on_disk(model_and_splits,
                                                                        tmp_path, memory_mb,
                                                                        on_disk):
    _, splits, model, extractor = model_and_splits
    cached = feature_cache.feature_dataset(model, splits.validation, splits.sizes["validation"],
                                           splits.train, memory_mb,
                                           str(tmp_path / "validation"), training=False)
    first_features, first_labels = collect(cached)
    assert bool(os.listdir(tmp_path)) == on_disk
    second_features, second_labels = collect(cached)  # From the cache.
    np.testing.assert_array_equal(first_features, second_features)
    np.testing.assert_array_equal(first_labels, second_labels)
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in splits.validation], strict=True)
    direct = extractor.predict(np.concatenate(images), verbose=0)
    # Batches of 16 against predict's 32 take other kernels: the pooled features are equal up to
    # float32 reordering of the backbone's reductions, relative to the features' largest value.
    assert_close_at_scale(first_features, direct)
    np.testing.assert_array_equal(first_labels, np.concatenate(labels))


def test_head_shares_its_weights_with_the_full_model(model_and_splits):
    _, splits, model, extractor = model_and_splits
    head = feature_cache.head_model(model)
    dense = model.get_layer("probabilities")
    dense.kernel.assign(np.random.default_rng(0).normal(size=dense.kernel.shape))
    images = next(iter(splits.test))[0].numpy()
    # Two compiled calls (extractor, then head) against one: the same float32 computation,
    # possibly fused and reordered otherwise; probabilities compared at their own scale (<= 1).
    assert_close_at_scale(head.predict(extractor.predict(images, verbose=0), verbose=0),
                          model.predict(images, verbose=0))


@pytest.mark.parametrize("setting, augment, expected", [
    ("auto", False, True), ("auto", True, False), ("on", True, True), ("off", False, False)])
def test_cache_is_off_by_default_with_augmentation(setting, augment, expected):
    config = Config.of(image_dir="x", feature_cache=setting, augment_flip=augment)
    use, why = feature_cache.decide(config.phase1.feature_cache, config.data.augmented,
                                    config.runtime.strategy)
    assert use == expected and why
