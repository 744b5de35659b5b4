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
import warnings
import zipfile
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

    Keras' own constructor does the checks it knows best (minimum input size, the ImageNet
    download); its errors are turned into `ConfigError`s that name the flag to change. A weights
    file is loaded after the build, so its errors cannot be mistaken for the constructor's.
    """
    keras_weights = _keras_weights_argument(weights)
    from_file = keras_weights not in (None, "imagenet")
    try:
        backbone = spec.constructor(include_top=False, weights=None if from_file else keras_weights,
                                    input_shape=(image_size, image_size, 3))
    except ValueError as error:
        if "Input size must be at least" in str(error):
            raise ConfigError("image_size", f"{image_size} px is too small for {spec.name}: "
                              f"{error}", f"Pass a larger --image_size (the default for "
                              f"{spec.name} is {spec.default_size}).") from None
        raise
    except Exception as error:  # Keras' get_file raises a bare Exception on a failed download.
        if keras_weights != "imagenet":
            raise
        raise ConfigError("weights", f"could not download the ImageNet weights of {spec.name} "
                          f"({error})", "Without network access pass --weights=<path to a "
                          ".weights.h5 file> or --weights=none (random initialisation).") from None
    if from_file:
        _load_weights_file(backbone, spec.name, weights)
    return backbone


def _keras_weights_argument(weights: str):
    if weights.lower() == "none":
        return None
    if weights == "imagenet":
        return weights
    if not os.path.isfile(weights):
        raise ConfigError("weights", f"no weights file at {weights!r}",
                          "Pass --weights=imagenet, --weights=none or the path of an existing "
                          ".weights.h5 file (see `tlkeras offline-weights`).")
    if not weights.endswith(WEIGHTS_FILE_SUFFIXES):  # Keras refuses any other name.
        raise ConfigError("weights", f"{weights!r} is not named like a Keras weights file "
                          f"({', '.join(WEIGHTS_FILE_SUFFIXES)})", "Pass a .weights.h5 file "
                          "written by save_weights(), --weights=imagenet or --weights=none.")
    return weights


WEIGHTS_FILE_SUFFIXES = (".weights.h5", ".weights.json", ".keras", ".h5", ".hdf5")


def _load_weights_file(backbone: keras.Model, name: str, path: str) -> None:
    """Loads a weights file into the built backbone. Keras' own errors are a traceback from
    h5py for a file that is not HDF5, and for another architecture's file a message of over a
    hundred lines with raw weight values; both become a few lines naming the file."""
    with warnings.catch_warnings(record=True) as caught:  # A mismatch: a warning per layer.
        warnings.simplefilter("always")
        try:
            backbone.load_weights(path)
        except Exception as error:  # OSError (h5py), ValueError, KeyError: any failure to load.
            raise ConfigError("weights", _why_not_loaded(backbone, name, path, error),
                              f"Pass the weights of keras.applications.{name}(include_top="
                              "False) (`tlkeras offline-weights` writes MobileNetV2's), the "
                              "--backbone this file belongs to, --weights=imagenet or "
                              "--weights=none.") from None
    for warning in caught:  # Loaded: Keras' warnings are worth reading after all.
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)


def _why_not_loaded(backbone: keras.Model, name: str, path: str, error: Exception) -> str:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if zipfile.is_zipfile(path) or path.endswith(".weights.json"):  # Not counted here: a
        # .keras archive, or the index of sharded weights.
        return f"{path!r} could not be loaded into {name} ({first_line[:200]})"
    stored = _stored_arrays(path)
    if stored is None:
        return f"{path!r} is not a readable Keras weights file ({first_line[:200]})"
    expected = (len(backbone.weights), len({weight.path.rsplit("/", 1)[0]
                                            for weight in backbone.weights}))
    if stored == expected:
        return (f"{path!r} does not match {name}: it holds as many weight arrays ({stored[0]}) "
                "and layers, but their names or shapes differ (another variant or width?)")
    return (f"{path!r} does not match {name}: {name} (include_top=False) has {expected[0]} "
            f"weight arrays in {expected[1]} layers, the file holds {stored[0]} in {stored[1]}")


def _stored_arrays(path: str) -> tuple[int, int] | None:
    """(weight arrays, layers holding them) in an HDF5 weights file; None if it is not HDF5."""
    import h5py

    if not h5py.is_hdf5(path):
        return None
    arrays = []
    try:
        with h5py.File(path, "r") as file:
            file.visititems(lambda name, item: arrays.append(name)
                            if isinstance(item, h5py.Dataset) else None)
    except OSError:  # An HDF5 signature on a damaged file.
        return None
    return len(arrays), len({name.rsplit("/", 1)[0] for name in arrays})


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
