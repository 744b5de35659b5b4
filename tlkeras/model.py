"""The classifier: raw pixels -> [augmentation] -> backbone preprocessing -> backbone -> new head.

Follows the keras.io transfer-learning guide: the backbone is called with `training=False` so its
BatchNormalization layers stay in inference mode, and the head is global average pooling, dropout
and a Dense softmax layer (kept in float32, as mixed precision requires for the output).
"""

import keras

from tlkeras.backbones import BackbonePreprocessing


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
    image_shape = tuple(backbone.input.shape[1:])
    inputs = keras.Input(shape=image_shape, name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = BackbonePreprocessing(backbone_name, name="preprocessing")(x)
    x = backbone(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pooling")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                 name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"tlkeras_{backbone_name}")
