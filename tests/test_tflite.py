"""--export_tflite writes TFLite models that agree with the Keras model (checked with LiteRT)."""

import json

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

import tlkeras.model.backbones  # noqa: F401  (registers BackbonePreprocessing for load_model)
from helpers import FASHION_MINI, FLOAT32_REORDERED


def real_pixels(size: int, per_class: int = 5) -> np.ndarray:
    return np.stack([
        tf.image.resize(tf.io.decode_png(tf.io.read_file(str(path)), channels=3), (size, size))
        for class_dir in sorted((FASHION_MINI / "test").iterdir())
        for path in sorted(class_dir.iterdir())[-per_class:]])


def test_run_reports_tflite_agreement_in_metrics(trained_run):
    _, run_dir = trained_run
    report = json.loads((run_dir / "metrics.json").read_text())["tflite"]
    assert set(report) == {"float32", "dynamic_int8"}
    assert report["float32"]["top1_agreement"] == 1.0
    # Probabilities in [0, 1], LiteRT vs Keras kernels: 1e-4 is ~1,600 float32 roundings.
    assert report["float32"]["max_abs_diff"] < FLOAT32_REORDERED
    assert report["dynamic_int8"]["top1_agreement"] >= 0.9
    assert report["dynamic_int8"]["bytes"] < 0.4 * report["float32"]["bytes"]
    labels = (run_dir / "tflite" / "labels.txt").read_text().split()
    assert labels == (run_dir / "labels.txt").read_text().split()


def test_float32_tflite_matches_keras_on_real_images(trained_run):
    _, run_dir = trained_run
    model = keras.models.load_model(run_dir / "model.keras")
    pixels = real_pixels(model.input.shape[1])
    interpreter = Interpreter(model_path=str(run_dir / "tflite" / "model_float32.tflite"))
    image_input = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(image_input["index"], pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(image_input["index"], pixels)
    interpreter.invoke()
    actual = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    expected = model.predict(pixels, verbose=0)
    np.testing.assert_array_equal(actual.argmax(axis=1), expected.argmax(axis=1))
    # Probabilities in [0, 1], LiteRT vs Keras kernels: 1e-4 is ~1,600 float32 roundings.
    assert np.abs(actual - expected).max() < FLOAT32_REORDERED
