"""Backbones by name, each with its own preprocessing inside the model."""

import keras
import numpy as np
import pytest

from helpers import assert_close_at_scale
from tlkeras.model import backbones
from tlkeras.tasks.classification import Classification

PIXELS = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype="float32")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype="float32")
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype="float32")


def test_every_keras_applications_model_is_available():
    names = set(backbones.available_backbones())
    assert {"MobileNetV2", "MobileNetV3Small", "EfficientNetB0", "EfficientNetV2S", "ResNet50",
            "ResNet50V2", "ConvNeXtTiny", "DenseNet121", "InceptionV3", "Xception", "VGG16",
            "NASNetMobile"} <= names
    assert len(names) >= 38
    assert backbones.get_spec("InceptionV3").default_size == 299


# Expected values written out from each family's documented normalisation, not from Keras.
@pytest.mark.parametrize("name, expected", [
    ("MobileNetV2", PIXELS / 127.5 - 1),                       # "tf" mode: [-1, 1]
    ("ResNet50", PIXELS[..., ::-1] - IMAGENET_MEAN_BGR),       # "caffe": BGR, mean removed
    ("DenseNet121", (PIXELS / 255 - IMAGENET_MEAN) / IMAGENET_STD),  # "torch" mode
    ("EfficientNetB0", PIXELS),                                # normalises inside the network
    ("ConvNeXtTiny", PIXELS),
])
def test_preprocessing_layer_applies_the_backbones_own_normalisation(name, expected):
    layer = backbones.BackbonePreprocessing(name)
    # Elementwise float32 arithmetic, a few roundings (6e-8 each) of the values' largest
    # magnitude apart from the formula: 1e-6 of that scale is ~16 roundings.
    assert_close_at_scale(keras.ops.convert_to_numpy(layer(PIXELS)), expected, relative=1e-6)


def test_classifier_saves_and_loads_with_safe_mode(tmp_path):
    spec = backbones.get_spec("EfficientNetB0")
    model = Classification(["a", "b", "c"]).build_model(
        backbones.build_backbone(spec, 32, "none"), spec.name, 0.2)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")  # safe_mode=True by default
    # Exact: the same layers, weights and batch run the same computation after loading.
    np.testing.assert_array_equal(loaded.predict(PIXELS, verbose=0),
                                  model.predict(PIXELS, verbose=0))
    assert loaded.get_layer("preprocessing").backbone == "EfficientNetB0"


@pytest.mark.parametrize("name", ["MobileNetV2", "MobileNetV3Small", "ResNet50"])
def test_recorded_parameter_counts_match_built_models(name):
    """--list_backbones prints recorded counts (building all 40 takes over a minute)."""
    import importlib.resources
    import json

    recorded = json.loads(importlib.resources.files("tlkeras.model").joinpath(
        "backbone_params.json").read_text())["params"]
    spec = backbones.get_spec(name)
    model = spec.constructor(include_top=False, weights=None,
                             input_shape=(spec.default_size, spec.default_size, 3))
    assert recorded[name] == model.count_params()
