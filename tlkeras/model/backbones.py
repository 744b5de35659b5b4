"""Keras Applications backbones by name, each with its own `preprocess_input` inside the model.

Every image model that `keras.applications` exports is found by name: the constructor lives in a
submodule (`keras.applications.resnet_v2.ResNet50V2`) whose `preprocess_input` is the one that
matches its ImageNet weights. tlkeras puts that function inside the model as a layer, so the trained
model and its SavedModel take raw 0-255 RGB pixels and nobody has to remember which normalisation a
backbone wants (EfficientNet, EfficientNetV2, MobileNetV3 and ConvNeXt normalise inside the
network; their `preprocess_input` is a pass-through, so nothing is applied twice).
"""

import dataclasses
import functools
import importlib.resources
import json
import os
import types
from collections.abc import Callable

import keras

from tlkeras.errors import ConfigError

# Default input sizes that differ from 224, from the keras.applications docs.
_DEFAULT_SIZES = {
    "InceptionV3": 299, "InceptionResNetV2": 299, "Xception": 299, "NASNetLarge": 331,
    "EfficientNetB1": 240, "EfficientNetB2": 260, "EfficientNetB3": 300, "EfficientNetB4": 380,
    "EfficientNetB5": 456, "EfficientNetB6": 528, "EfficientNetB7": 600,
    "EfficientNetV2B1": 240, "EfficientNetV2B2": 260, "EfficientNetV2B3": 300,
    "EfficientNetV2S": 384, "EfficientNetV2M": 480, "EfficientNetV2L": 480,
}


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A keras.applications model: its constructor and the module holding its preprocessing."""

    name: str
    constructor: Callable[..., keras.Model]
    module: types.ModuleType

    @property
    def default_size(self) -> int:
        return _DEFAULT_SIZES.get(self.name, 224)

    @property
    def preprocess_input(self) -> Callable:
        return self.module.preprocess_input


@functools.cache
def available_backbones() -> dict[str, BackboneSpec]:
    """All image models exported by `keras.applications`, keyed by constructor name.

    Each constructor's preprocessing is found through the public submodule named like the module
    that defines it (`keras.src.applications.mobilenet_v3` -> `keras.applications.mobilenet_v3`).
    """
    specs = {}
    for name, constructor in vars(keras.applications).items():
        if not name[:1].isupper() or not callable(constructor):
            continue
        module = getattr(keras.applications, constructor.__module__.rsplit(".", 1)[-1], None)
        if isinstance(module, types.ModuleType) and hasattr(module, "preprocess_input"):
            specs[name] = BackboneSpec(name, constructor, module)
    return dict(sorted(specs.items()))


def backbone_table() -> str:
    """`--list_backbones`: name, default input size and headless parameter count of each.

    Counts come from `backbone_params.json` (recorded by tools/record_backbone_params.py), since
    building all 40 models takes over a minute; a model missing there shows "?".
    """
    recorded = json.loads(importlib.resources.files("tlkeras.model").joinpath(
        "backbone_params.json").read_text())["params"]
    rows = [f"{'backbone':<20} {'default size':>12} {'parameters (no top)':>20}"]
    for name, spec in available_backbones().items():
        params = f"{recorded[name]:,}" if name in recorded else "?"
        rows.append(f"{name:<20} {spec.default_size:>12} {params:>20}")
    return "\n".join(rows)


def get_spec(name: str) -> BackboneSpec:
    """Looks up a backbone by its keras.applications name; unknown names list the valid ones."""
    specs = available_backbones()
    if name not in specs:
        raise ConfigError("backbone", f"unknown backbone {name!r}",
                          f"Valid names (keras.applications): {', '.join(specs)}.")
    return specs[name]


def build_backbone(spec: BackboneSpec, image_size: int, weights: str) -> keras.Model:
    """Builds the headless backbone at `image_size` with `weights` (imagenet, none or a path).

    Keras' own constructor does the checks it knows best (minimum input size, weight loading);
    its errors are turned into `ConfigError`s that name the flag to change.
    """
    keras_weights = _keras_weights_argument(weights)
    try:
        return spec.constructor(include_top=False, weights=keras_weights,
                                input_shape=(image_size, image_size, 3))
    except ValueError as error:
        if "Input size must be at least" in str(error):
            raise ConfigError("image_size", f"{image_size} px is too small for {spec.name}: "
                              f"{error}", f"Pass a larger --image_size (the default for "
                              f"{spec.name} is {spec.default_size}).") from None
        if keras_weights is None or keras_weights == "imagenet":
            raise
        raise ConfigError("weights", f"could not load {weights} into {spec.name}: {error}",
                          f"Pass a weights file saved from keras.applications.{spec.name} "
                          "(include_top=False), or --weights=imagenet / --weights=none.") from None
    except Exception as error:  # Keras' get_file raises a bare Exception on a failed download.
        if keras_weights != "imagenet":
            raise
        raise ConfigError("weights", f"could not download the ImageNet weights of {spec.name} "
                          f"({error})", "Without network access pass --weights=<path to a "
                          ".weights.h5 file> or --weights=none (random initialisation).") from None


def _keras_weights_argument(weights: str):
    if weights.lower() == "none":
        return None
    if weights == "imagenet":
        return weights
    if not os.path.isfile(weights):
        raise ConfigError("weights", f"no weights file at {weights!r}",
                          "Pass --weights=imagenet, --weights=none or the path of an existing "
                          ".weights.h5 file (see `tlkeras offline-weights`).")
    return weights


@keras.saving.register_keras_serializable(package="tlkeras")
class BackbonePreprocessing(keras.layers.Layer):
    """Applies the backbone's own `preprocess_input` inside the model.

    A registered layer, not a `Lambda`: `keras.models.load_model` refuses Lambdas in safe mode, and
    the config records only the backbone name, so the saved model stays readable.
    """

    def __init__(self, backbone: str, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self._preprocess = get_spec(backbone).preprocess_input

    def call(self, images):
        return self._preprocess(images)

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}
