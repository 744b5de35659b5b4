"""Training on cached activations: the frozen part of the network runs once per image.

Phase 1 trains only the head on the frozen backbone, which runs in inference mode, so without
random augmentation each image's pooled features are the same in every epoch; the keras.io
recipe recomputes them anyway. Phase 2 unfreezes the top of the backbone, but everything below
the frozen boundary (`tlkeras.model.cut`) is still a fixed function of the image. Both phases
therefore compute those activations once (`tlkeras.training.activations`) and train a model
made of the full model's own layers above them (shared, not copied), so the weights trained are
the full model's weights: the checkpoint, the backups, the report and the export use them as
they are.
"""

import dataclasses
from collections.abc import Callable

import keras
import tensorflow as tf

from tlkeras.model import cut
from tlkeras.model.network import FEATURE_LAYER, PREPROCESSING_LAYER, head_layers


def decide(setting: str, augmented: bool, strategy: str) -> tuple[bool, str]:
    """Whether a phase trains on cached activations, and why (for the log and metrics.json).

    `setting` is --feature_cache (auto, on, off); `strategy` is --strategy.
    """
    if setting == "off":
        return False, "off (--feature_cache=off): the backbone runs on every image every epoch"
    if strategy == "tpu":  # Untested: the extractor may run per replica there.
        return False, "off: not yet supported with --strategy=tpu"
    if setting == "on":
        note = " (training sees unaugmented images)" if augmented else ""
        return True, f"on (--feature_cache=on){note}"
    if augmented:
        return False, ("off: random augmentation is on, so activations differ every epoch "
                       "(--feature_cache=on caches them anyway)")
    return True, "on: no random augmentation, so each image's activations never change"


@dataclasses.dataclass
class CachedPart:
    """A model over cached activations, sharing the full model's layers, and how to compute
    the activations from images (raw pixels, inference mode)."""

    trainee: keras.Model
    extract: Callable[[tf.Tensor], tf.Tensor | tuple]
    description: str  # For the log and metrics.json.


def pooled_features(model: keras.Model) -> CachedPart:
    """Phase 1: pooled backbone features -> the model's head layers."""
    pooling = model.get_layer(FEATURE_LAYER)
    extractor = keras.Model(model.input, pooling.output)
    features = keras.Input(shape=pooling.output.shape[1:], name="features")
    return CachedPart(keras.Model(features, _head(model, features), name="head"),
                      lambda images: _float32(extractor(images, training=False)),
                      "pooled backbone features")


def frozen_boundary(model: keras.Model, backbone: keras.Model) -> CachedPart | None:
    """Phase 2: the activations where the frozen part ends -> the trainable top and the head.

    None when nothing below the trainable top is frozen (the boundary is the backbone's input).
    """
    boundary = cut.frozen_boundary(backbone)
    if not boundary or any(tensor is backbone.input for tensor in boundary):
        return None
    bottom, top = cut.split_at(backbone, boundary)
    preprocessing = model.get_layer(PREPROCESSING_LAYER)
    inputs = [keras.Input(shape=tensor.shape[1:], name=f"boundary_{i}")
              for i, tensor in enumerate(boundary)]
    x = model.get_layer(FEATURE_LAYER)(top(inputs if len(inputs) > 1 else inputs[0]))
    trainee = keras.Model(inputs if len(inputs) > 1 else inputs[0], _head(model, x),
                          name="trainable_top")

    def extract(images):
        outputs = bottom(preprocessing(images), training=False)
        return tuple(_float32(t) for t in outputs) if len(inputs) > 1 else _float32(outputs)

    names = ", ".join(cut.boundary_names(boundary))
    return CachedPart(trainee, extract, f"activations at the frozen boundary ({names})")


def _head(model: keras.Model, x):
    for layer in head_layers(model):
        x = layer(x)
    return x


def _float32(tensor):
    return tf.cast(tensor, tf.float32)
