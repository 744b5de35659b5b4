"""Phase 1 on cached backbone features: the frozen backbone runs once per image, not per epoch.

In phase 1 only the head trains. The backbone is frozen and runs in inference mode, so without
random augmentation it maps each image to the same pooled feature vector in every epoch; the
keras.io recipe recomputes it anyway. Here the first epoch computes the features (a compiled
extractor called batch by batch) and `tf.data.Dataset.cache` keeps them, in memory when they fit
in --cache_memory_mb, else in a file in the run folder; later epochs train the head on them.

The head trained on features is built from the model's own head layers (the same layer objects),
so its weights are the full model's weights: phase 2 and the export need no copy.
"""

import os

import keras
import tensorflow as tf

from tlkeras import data
from tlkeras.model.network import FEATURE_LAYER, head_layers


def decide(setting: str, augmented: bool, strategy: str) -> tuple[bool, str]:
    """Whether phase 1 trains on cached features, and why (for the log and metrics.json).

    `setting` is --feature_cache (auto, on, off); `strategy` is --strategy.
    """
    if setting == "off":
        return False, "off (--feature_cache=off): the backbone runs on every image every epoch"
    if strategy == "tpu":  # Untested: the extractor may run per replica there.
        return False, "off: not yet supported with --strategy=tpu"
    if setting == "on":
        note = " (phase 1 sees unaugmented images)" if augmented else ""
        return True, f"on (--feature_cache=on){note}"
    if augmented:
        return False, ("off: random augmentation is on, so features differ every epoch "
                       "(--feature_cache=on caches them anyway)")
    return True, "on: no random augmentation, so each image's features never change"


def head_model(model: keras.Model) -> keras.Model:
    """pooled features -> the model's head layers (shared, not copied)."""
    features = keras.Input(shape=model.get_layer(FEATURE_LAYER).output.shape[1:],
                           name="features")
    x = features
    for layer in head_layers(model):
        x = layer(x)
    return keras.Model(features, x, name="head")


def feature_dataset(model: keras.Model, images: tf.data.Dataset, size: int | None,
                    like: data.TrainingData, cache_memory_mb: int, cache_file: str,
                    training: bool) -> tf.data.Dataset | data.TrainingData:
    """(features, label) examples, computed during the first pass, then cached.

    `images` are batched examples in order. Batching, seed, shuffle buffer and options follow
    `like` (the image training data). The cache is in memory when it fits in
    `cache_memory_mb`, else at `cache_file`. Returns `TrainingData` for the training split,
    else batches in order.
    """
    pooling = model.get_layer(FEATURE_LAYER)
    extractor = keras.Model(model.input, pooling.output)
    extract = tf.function(lambda x: tf.cast(extractor(x, training=False), tf.float32),
                          input_signature=[tf.TensorSpec.from_spec(images.element_spec[0])])
    label_spec = tf.TensorSpec.from_spec(images.element_spec[1])
    feature_spec = tf.TensorSpec([None, pooling.output.shape[-1]], tf.float32)

    def compute():
        for batch_images, labels in images:
            yield extract(batch_images), labels

    features = tf.data.Dataset.from_generator(compute, output_signature=(feature_spec,
                                                                         label_spec)).unbatch()
    if size is None or not data.fits_in_memory(size, feature_spec.shape[-1] * 4,
                                               cache_memory_mb):
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
    else:
        cache_file = ""  # In memory.
    if size is not None:  # Lets Keras know the epoch length before the first pass ends.
        features = features.apply(tf.data.experimental.assert_cardinality(size))
    if training:
        return data.training_data(features, size, like.batch_size, like.seed,
                                  like.shuffle_buffer, like.options, cache_file)
    return data.pipeline(features, like.batch_size, like.options, cache_file)


class FullModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """A ModelCheckpoint that saves `full_model` even while only the head is being fitted."""

    def __init__(self, full_model: keras.Model, filepath: str, **kwargs):
        super().__init__(filepath, **kwargs)
        self._full_model = full_model

    def set_model(self, model):
        del model  # The head shares its layers with the full model, which is what we save.
        super().set_model(self._full_model)
