"""Phase 1 on cached features: same features as the backbone, head shared with the full model."""

import os

import keras
import numpy as np
import pytest

from tlkeras import backbones, data, feature_cache
from tlkeras.config import Config
from tlkeras.model import build_classifier


@pytest.fixture(scope="module")
def model_and_splits(small_image_dir, weights_path):
    config = Config(image_dir=str(small_image_dir), weights=str(weights_path), batch_size=16,
                    image_size=64)
    splits = data.load(config, 64)
    backbone = backbones.build_backbone(backbones.get_spec("MobileNetV2"), 64, config.weights)
    model = build_classifier(backbone, "MobileNetV2", 10, 0.2)
    extractor = keras.Model(model.input, model.get_layer("pooling").output)
    return config, splits, model, extractor


def collect(dataset):
    features, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    return np.concatenate(features), np.concatenate(labels)


@pytest.mark.parametrize("memory_mb, on_disk", [(2048, False), (0, True)])
def test_cached_features_are_the_backbone_features_in_memory_or_on_disk(model_and_splits,
                                                                        tmp_path, memory_mb,
                                                                        on_disk):
    config, splits, model, extractor = model_and_splits
    config = Config(**{**config.__dict__, "cache_memory_mb": memory_mb})
    cached = feature_cache.feature_dataset(model, splits.validation, splits.sizes["validation"],
                                           config, 16, str(tmp_path), "validation",
                                           training=False)
    first_features, first_labels = collect(cached)
    assert bool(os.listdir(tmp_path)) == on_disk
    second_features, second_labels = collect(cached)  # From the cache.
    np.testing.assert_array_equal(first_features, second_features)
    np.testing.assert_array_equal(first_labels, second_labels)
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in splits.validation], strict=True)
    direct = extractor.predict(np.concatenate(images), verbose=0)
    np.testing.assert_allclose(first_features, direct, atol=1e-5)
    np.testing.assert_array_equal(first_labels, np.concatenate(labels))


def test_head_shares_its_weights_with_the_full_model(model_and_splits):
    _, splits, model, extractor = model_and_splits
    head = feature_cache.head_model(model)
    dense = model.get_layer("probabilities")
    dense.kernel.assign(np.random.default_rng(0).normal(size=dense.kernel.shape))
    images = next(iter(splits.test))[0].numpy()
    np.testing.assert_allclose(head.predict(extractor.predict(images, verbose=0), verbose=0),
                               model.predict(images, verbose=0), atol=1e-5)


@pytest.mark.parametrize("setting, augment, expected", [
    ("auto", False, True), ("auto", True, False), ("on", True, True), ("off", False, False)])
def test_cache_is_off_by_default_with_augmentation(setting, augment, expected):
    use, why = feature_cache.decide(Config(image_dir="x", feature_cache=setting,
                                           augment_flip=augment))
    assert use == expected and why
