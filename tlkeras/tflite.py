"""TFLite export for on-device use, checked against the Keras model with the TFLite interpreter.

The TFLite model takes raw 0-255 RGB pixels (float32 [N, H, W, 3], as `serving_pixels`) and
returns the class probabilities (or a regressor's predictions); `labels.txt` beside it names the
classes (or targets). Variants:
`float32` (no quantisation), `float16` (weights stored in float16, half the size) and
`dynamic_int8` (dynamic-range quantisation: int8 weights, float activations, ~4x smaller).
"""

import os

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter


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
    interpreter = Interpreter(model_path=tflite_path)
    input_index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(input_index, pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_index, pixels.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def export_and_verify(model: keras.Model, out_dir: str, variants: list[str],
                      class_names: list[str], pixels: np.ndarray,
                      regression: bool = False) -> dict:
    """Writes each variant plus labels.txt; reports size and agreement with the Keras model.

    Top-1 agreement only for classifiers; the max abs difference for both.
    """
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "labels.txt"), "w") as file:
        file.write("".join(f"{name}\n" for name in class_names))
    expected = model.predict(pixels, verbose=0)
    report = {}
    for variant in variants:
        path = os.path.join(out_dir, f"model_{variant}.tflite")
        write(model, path, variant)
        actual = predict(path, pixels)
        report[variant] = {"path": path, "bytes": os.path.getsize(path), "images": len(pixels),
                           "max_abs_diff": float(np.abs(actual - expected).max())}
        if not regression:
            report[variant]["top1_agreement"] = float(np.mean(actual.argmax(1) ==
                                                              expected.argmax(1)))
    return report
