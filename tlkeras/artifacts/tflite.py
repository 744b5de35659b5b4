"""TFLite export for on-device use, checked against the Keras model with the TFLite interpreter.

The TFLite model takes raw 0-255 RGB pixels (float32 [N, H, W, 3], as `serving_pixels`) and
returns the model's output (a classifier's probabilities, a regressor's predictions); `labels.txt`
beside it names the outputs. How Keras and TFLite outputs are compared is the task's
(`Task.compare_outputs`). The LiteRT interpreter comes from the optional `ai-edge-litert`
package (`pip install 'tlkeras[tflite]'`). Variants:
`float32` (no quantisation), `float16` (weights stored in float16, half the size) and
`dynamic_int8` (dynamic-range quantisation: int8 weights, float activations, ~4x smaller).
"""

import os
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tlkeras.artifacts.contract import write_labels
from tlkeras.errors import ConfigError


def write(model: keras.Model, path: str, variant: str) -> None:
    """Keras' own LiteRT export (`model.export(format="litert")`), quantised as `variant` says."""
    options = {}
    if variant in ("float16", "dynamic_int8"):
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        options["target_spec"] = {"supported_types": [tf.float16]}
    model.export(path, format="litert", verbose=False, **options)


def predict(tflite_path: str, pixels: np.ndarray) -> np.ndarray:
    """Probabilities from the LiteRT (TFLite) interpreter for a batch of pixels."""
    interpreter = require_interpreter()(model_path=tflite_path)
    input_index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(input_index, pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_index, pixels.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def export_and_verify(model: keras.Model, out_dir: str, variants: list[str],
                      output_names: list[str], pixels: np.ndarray,
                      compare_outputs: Callable[[np.ndarray, np.ndarray], dict]) -> dict:
    """Writes each variant plus labels.txt; reports size and `compare_outputs(keras, tflite)`."""
    require_interpreter()  # Fails before any file is written when LiteRT is missing.
    write_labels(os.path.join(out_dir, "labels.txt"), output_names)
    expected = model.predict(pixels, verbose=0)
    report = {}
    for variant in variants:
        path = os.path.join(out_dir, f"model_{variant}.tflite")
        write(model, path, variant)
        actual = predict(path, pixels)
        report[variant] = {"path": path, "bytes": os.path.getsize(path), "images": len(pixels),
                           **compare_outputs(expected, actual)}
    return report


def require_interpreter():
    """The LiteRT Interpreter class; a ConfigError naming the extra to install when missing."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ConfigError("export_tflite", "checking TFLite models needs the ai-edge-litert "
                          "package (the LiteRT interpreter)", "Install it with `pip install "
                          "'tlkeras[tflite]'`, or drop --export_tflite.") from None
    return Interpreter
