"""The model: raw pixels -> [augmentation] -> backbone preprocessing -> backbone -> new head.

Follows the keras.io transfer-learning guide: the backbone is called with `training=False` so its
BatchNormalization layers stay in inference mode, and the head is global average pooling, dropout
and a Dense layer (kept in float32, as mixed precision requires for the output). A classifier's
Dense layer is a softmax; a regressor's is linear in normalised units and is followed by a
`Normalization(invert=True)` layer that restores the targets' own units, so the model, its
checkpoints and its exports all predict in the units of the training data.

Importing this module also registers tlkeras' custom layer and losses, which loading a saved
`.keras` file needs.
"""

import keras
import numpy as np

from tlkeras import losses  # noqa: F401  (registers the losses that compiled .keras files name)
from tlkeras.backbones import BackbonePreprocessing

FEATURE_LAYER = "pooling"  # The backbone's pooled features; the head's layers follow it.


def build_augmentation(flip: bool, translate: float):
    """Light training-only augmentation as Keras layers (inactive at inference and in exports)."""
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal"))
    if translate:
        layers.append(keras.layers.RandomTranslation(translate, translate, fill_mode="reflect"))
    return keras.Sequential(layers, name="augmentation") if layers else None


def build_classifier(backbone: keras.Model, backbone_name: str, num_classes: int,
                     dropout: float, augmentation=None) -> keras.Model:
    """Wraps a headless backbone into a classifier that takes raw 0-255 RGB pixels."""
    inputs, features = _pooled_features(backbone, backbone_name, dropout, augmentation)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                 name="probabilities")(features)
    return keras.Model(inputs, outputs, name=f"tlkeras_{backbone_name}")


def build_regressor(backbone: keras.Model, backbone_name: str, target_mean: np.ndarray,
                    target_std: np.ndarray, dropout: float, augmentation=None) -> keras.Model:
    """Wraps a headless backbone into a regressor of len(target_mean) targets, in their units.

    The linear Dense layer predicts normalised targets (its zero-initialised bias starts every
    prediction at the training mean); the inverted Normalization maps them back.
    """
    inputs, features = _pooled_features(backbone, backbone_name, dropout, augmentation)
    normalised = keras.layers.Dense(len(target_mean), dtype="float32",
                                    name="normalised_predictions")(features)
    outputs = keras.layers.Normalization(mean=np.asarray(target_mean, np.float32),
                                         variance=np.square(np.asarray(target_std, np.float32)),
                                         invert=True, dtype="float32",
                                         name="predictions")(normalised)
    return keras.Model(inputs, outputs, name=f"tlkeras_{backbone_name}_regressor")


def head_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers after the pooled features, in order (dropout, Dense, [Normalization])."""
    layers = model.layers
    return layers[[layer.name for layer in layers].index(FEATURE_LAYER) + 1:]


def _pooled_features(backbone, backbone_name, dropout, augmentation):
    image_shape = tuple(backbone.input.shape[1:])
    inputs = keras.Input(shape=image_shape, name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = BackbonePreprocessing(backbone_name, name="preprocessing")(x)
    x = backbone(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name=FEATURE_LAYER)(x)
    return inputs, keras.layers.Dropout(dropout, name="dropout")(x)
