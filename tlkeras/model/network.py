"""The model: raw pixels -> [augmentation] -> backbone preprocessing -> backbone -> new head.

Follows the keras.io transfer-learning guide: the backbone is called with `training=False` so its
BatchNormalization layers stay in inference mode, and the head is global average pooling,
dropout and the task's output layers (`Task.build_head`, kept in float32 as mixed precision
requires for the output).

Importing this module also registers tlkeras' custom layer and losses, which loading a saved
`.keras` file needs.
"""

from collections.abc import Callable

import keras

from tlkeras.model import losses  # noqa: F401  (registers the losses compiled .keras files name)
from tlkeras.model.backbones import BackbonePreprocessing

FEATURE_LAYER = "pooling"  # The backbone's pooled features; the head's layers follow it.
PREPROCESSING_LAYER = "preprocessing"  # The backbone's own preprocess_input, before it.


def build_augmentation(flip: bool, translate: float):
    """Light training-only augmentation as Keras layers (inactive at inference and in exports)."""
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal"))
    if translate:
        layers.append(keras.layers.RandomTranslation(translate, translate, fill_mode="reflect"))
    return keras.Sequential(layers, name="augmentation") if layers else None


def build_model(backbone: keras.Model, backbone_name: str, head: Callable, dropout: float,
                augmentation=None, name: str | None = None) -> keras.Model:
    """Wraps a headless backbone into a model that takes raw 0-255 RGB pixels.

    `head` maps the pooled, dropped-out features to the outputs (a task's `build_head`).
    """
    inputs = keras.Input(shape=tuple(backbone.input.shape[1:]), name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = BackbonePreprocessing(backbone_name, name=PREPROCESSING_LAYER)(x)
    x = backbone(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name=FEATURE_LAYER)(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.Model(inputs, head(x), name=name or f"tlkeras_{backbone_name}")


def head_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers after the pooled features, in order (dropout, then the task's head)."""
    layers = model.layers
    return layers[[layer.name for layer in layers].index(FEATURE_LAYER) + 1:]
