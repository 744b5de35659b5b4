"""Cached activations: the backbone's own features, a head and a trainable top shared with the
full model, and a phase 2 on the frozen boundary that ends where phase 2 on images ends."""

import os

import keras
import numpy as np
import pytest

from helpers import assert_close_at_scale
from tlkeras import data
from tlkeras.config import Config
from tlkeras.data.sources import LABEL_CLASSES, files_fingerprint
from tlkeras.model import backbones, finetune
from tlkeras.model.network import FEATURE_LAYER
from tlkeras.tasks.classification import Classification
from tlkeras.training import activations, feature_cache, feature_store, phases


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
    cached = activations.compute(feature_cache.pooled_features(model).extract, splits.validation,
                                 splits.sizes["validation"], memory_mb,
                                 str(tmp_path / "validation.tfrecord"))
    assert (cached.location != "memory") == on_disk == bool(os.listdir(tmp_path))
    assert cached.size == splits.sizes["validation"]
    first_features, first_labels = collect(cached.examples.batch(16))
    second_features, second_labels = collect(cached.examples.batch(16))  # Read again.
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
    head = feature_cache.pooled_features(model).trainee
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


def phase2_weights(config, splits, cached: bool, tmp_path) -> list[np.ndarray]:
    """Phase 2 (top 20 layers of MobileNetV2, BN frozen) for 2 epochs from the same start."""
    keras.utils.set_random_seed(config.runtime.seed)
    backbone = backbones.build_backbone(backbones.get_spec("MobileNetV2"), 64,
                                        config.model.weights)
    task = Classification(splits.output_names)
    model = task.build_model(backbone, "MobileNetV2", 0.5)  # Dropout: its seeds must match too.
    finetune.unfreeze_top(backbone, finetune.plan_unfreeze(backbone, "20"))
    phase = phases.Phase("phase2", 0, 2, keras.optimizers.Adam(1e-3), task)
    if cached:
        part = feature_cache.frozen_boundary(model, backbone)
        assert part.description.endswith("(block_14_add)")
        result = phases.fit_on_cached(part, splits, phase, [], None, str(tmp_path / "cache"),
                                      config.data.cache_memory_mb)
        assert result["cache"]["batches_computed"] == (
            splits.train.steps_per_epoch + -(-splits.sizes["validation"] // 16))
    else:
        result = phases.fit(model, splits.train, splits.validation, phase, [])
    return [weight.numpy() for weight in model.weights], result["history"]


def test_phase2_on_frozen_boundary_activations_ends_with_the_uncached_weights(
        model_and_splits, tmp_path):
    config, splits, _, _ = model_and_splits
    cached, cached_history = phase2_weights(config, splits, True, tmp_path)
    uncached, uncached_history = phase2_weights(config, splits, False, tmp_path)
    for after_cache, after_images in zip(cached, uncached, strict=True):
        # The frozen bottom ran on in-order batches instead of shuffled ones: per image the same
        # float32 ops up to reordering (~1e-7 relative). Adam scales each update to about the
        # learning rate (1e-3) whatever the gradient's size, so a near-zero gradient that
        # reordering nudges moves its weight by a fraction of one step: 1e-5 is 1% of a step
        # (measured: 4e-6 at most over 2 epochs), far below what a wrong input would give.
        np.testing.assert_allclose(after_cache, after_images, rtol=0, atol=1e-5)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(cached_history[key], uncached_history[key], rtol=1e-4)


def test_feature_store_hands_back_the_same_activations_without_a_backbone_pass(
        model_and_splits, tmp_path):
    config, splits, model, _ = model_and_splits
    part = feature_cache.pooled_features(model)
    entries = {split: feature_store.entry_dir(str(tmp_path / "store"), config, 64,
                                              part.description, fingerprint)
               for split, fingerprint in splits.fingerprints.items()}
    start = [variable.numpy() for variable in model.variables]  # Weights and Dropout's seed.
    runs = []
    for _ in range(2):  # The same phase 1 from the same start: first computed, then stored.
        for variable, value in zip(model.variables, start, strict=True):
            variable.assign(value)
        phase = phases.Phase("phase1", 0, 2, keras.optimizers.Adam(1e-3),
                             Classification(splits.output_names))
        runs.append(phases.fit_on_cached(part, splits, phase, [], None, str(tmp_path / "c"),
                                         config.data.cache_memory_mb, entries))
    assert runs[0]["cache"]["batches_computed"] > 0
    assert runs[1]["cache"]["batches_computed"] == 0  # No backbone call at all.
    assert runs[1]["cache"]["where"] == entries["train"]
    assert runs[1]["history"] == runs[0]["history"]  # Stored float32 values, read back exactly.
    assert sorted(os.listdir(tmp_path / "store")) == sorted(
        os.path.basename(entry) for entry in entries.values())


def test_feature_store_key_changes_with_everything_the_activations_depend_on(tmp_path):
    images = tmp_path / "a.png"
    images.write_bytes(b"png")
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"weights")
    config = Config.of(image_dir=str(tmp_path), weights=str(weights))

    def key(config=config, size=64, what="pooled backbone features", files=None):
        fingerprint = files_fingerprint(files or [(str(images), 0)])
        return feature_store.entry_dir("store", config, size, what, fingerprint)

    first = key()
    assert key() == first  # Same inputs, same entry.
    os.utime(images, ns=(1, 1))  # A file touched (or replaced) since.
    assert key() != first
    touched = key()
    assert key(files=[(str(images), 1)]) != touched  # Another label.
    assert key(size=96) != touched
    assert key(what="activations at the frozen boundary (block_12_add)") != touched
    assert key(config=config.replace(backbone="ResNet50")) != touched
    weights.write_bytes(b"other weights")
    os.utime(weights, ns=(2, 2))
    assert key() != touched
    assert key(config=config.replace(weights="none", seed=1)) != key(
        config=config.replace(weights="none", seed=2))
