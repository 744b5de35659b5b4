"""TFLite export for on-device use, checked against the Keras model with the TFLite interpreter.

The float TFLite models take raw 0-255 RGB pixels (float32 [N, H, W, 3], as `serving_pixels`);
`int8` takes them as uint8 bytes. Each returns the model's output (a classifier's probabilities,
a regressor's predictions), and carries the metadata on-device libraries read
(`tflite_metadata`: input normalisation, and a classifier's labels packed as labels.txt);
`labels.txt` beside the models names the outputs too. How Keras and TFLite outputs are compared
is the task's (`Task.compare_outputs`). The LiteRT interpreter comes from the optional
`ai-edge-litert` package and the metadata schema from `mediapipe` (`pip install
'tlkeras[tflite]'`). Variants:
`float32` (no quantisation), `float16` (weights stored in float16, half the size),
`dynamic_int8` (dynamic-range quantisation: int8 weights, float activations, ~4x smaller) and
`int8` (full-integer: int8 weights and activations calibrated on training images, uint8 input and
output, for integer-only accelerators such as Edge TPU and NPU delegates).
"""

import os
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tlkeras.artifacts import tflite_metadata
from tlkeras.artifacts.contract import CLASSIFIER_OUTPUT, write_labels
from tlkeras.errors import ConfigError

# Images the int8 variant's activation ranges are calibrated on: TFLite's guide asks for
# ~100-500; more only slows the export (each is one float forward pass).
REPRESENTATIVE_IMAGES = 128


def write(model: keras.Model, path: str, variant: str,
          calibration: np.ndarray | None = None) -> None:
    """Keras' own LiteRT export (`model.export(format="litert")`), quantised as `variant` says;
    `int8` calibrates on `calibration` (raw pixels, [N, H, W, 3])."""
    options = {}
    if variant in ("float16", "dynamic_int8", "int8"):
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        options["target_spec"] = {"supported_types": [tf.float16]}
    if variant == "int8":
        options.update(representative_dataset=_representative_dataset(calibration),
                       target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
                       inference_input_type=tf.uint8, inference_output_type=tf.uint8)
    model.export(path, format="litert", verbose=False, **options)


def calibration_pixels(examples: tf.data.Dataset, count: int = REPRESENTATIVE_IMAGES) -> np.ndarray:
    """The first `count` images of unbatched (image, target) training examples, as float32.

    The training split is already shuffled once with the seed (folder_splits, TFDS's
    shuffle_seed), so its first images mix the classes.
    """
    images = [element[0] if isinstance(element, tuple) else element
              for element in examples.take(count).as_numpy_iterator()]
    return np.stack(images).astype(np.float32)


def _representative_dataset(pixels: np.ndarray) -> Callable:
    """The converter's calibration input: one image at a time, as the float model's input.

    One pixel of the first image is set to 0 and one to 255: the calibrated input range is then
    exactly 0-255, so the uint8 input's quantisation is scale 1, zero point 0, and a camera
    frame's bytes go in unchanged (what MediaPipe and the Task Library feed a uint8 model).
    """
    pinned = pixels.astype(np.float32)  # A copy: the caller's images stay as they were.
    pinned[0, 0, 0, :] = 0.0
    pinned[0, -1, -1, :] = 255.0

    def images():
        for image in pinned:
            yield [image[np.newaxis]]
    return images


def predict(tflite_path: str, pixels: np.ndarray) -> np.ndarray:
    """The model's float outputs from the LiteRT (TFLite) interpreter for a batch of raw pixels.

    A quantised input gets the pixels quantised with its scale and zero point (for `int8`,
    scale 1 and zero point 0: the pixels themselves), and a quantised output is dequantised.
    """
    interpreter = require_interpreter()(model_path=tflite_path)
    image_input = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(image_input["index"], pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(image_input["index"], _quantise(pixels, image_input))
    interpreter.invoke()
    output = interpreter.get_output_details()[0]
    return _dequantise(interpreter.get_tensor(output["index"]), output)


def _quantise(values: np.ndarray, details: dict) -> np.ndarray:
    if details["dtype"] == np.float32:
        return values.astype(np.float32)
    scale, zero_point = details["quantization"]
    limits = np.iinfo(details["dtype"])
    return np.clip(np.round(values / scale + zero_point), limits.min, limits.max) \
        .astype(details["dtype"])


def _dequantise(values: np.ndarray, details: dict) -> np.ndarray:
    if details["dtype"] == np.float32:
        return values
    scale, zero_point = details["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


def export_and_verify(model: keras.Model, out_dir: str, variants: list[str],
                      output_names: list[str], pixels: np.ndarray,
                      compare_outputs: Callable[[np.ndarray, np.ndarray], dict],
                      representative: tf.data.Dataset | None = None) -> dict:
    """Writes each variant, with metadata, plus labels.txt; reports size, metadata and
    `compare_outputs(keras, tflite)` on the held-out `pixels`.

    `int8` calibrates on `representative` (the unbatched training examples); without it, on the
    held-out pixels it is then checked on, which the report records as `calibration: held_out`.
    """
    require_interpreter()  # Both fail before any file is written when a package is missing.
    tflite_metadata.require_schema()
    write_labels(os.path.join(out_dir, "labels.txt"), output_names)
    expected = model.predict(pixels, verbose=0)
    classifier = CLASSIFIER_OUTPUT in getattr(model, "output_names", [])  # Functional models.
    report = {}
    for variant in variants:
        path = os.path.join(out_dir, f"model_{variant}.tflite")
        calibration = {}
        if variant == "int8":
            source = "train" if representative is not None else "held_out"
            images = (calibration_pixels(representative) if representative is not None
                      else pixels)
            calibration = {"calibration": source, "calibration_images": len(images)}
            write(model, path, variant, images)
        else:
            write(model, path, variant)
        metadata = tflite_metadata.add_metadata(path, output_names, classifier)
        actual = predict(path, pixels)
        report[variant] = {"path": path, "bytes": os.path.getsize(path), "images": len(pixels),
                           **calibration, "metadata": metadata,
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
