"""SavedModel export that a TF Serving team deploys unchanged.

Layout and names are the export contract (`tlkeras.artifacts.contract`): a new integer version
per export (tag `serve`), and four signatures:

- `serving_default`: input `image_bytes` (string [N], encoded JPEG/PNG/GIF/BMP of any size), so
  TF Serving's REST API takes `{"instances": [{"b64": "..."}]}`. Decoding and resizing happen in
  the graph, exactly as the training pipeline does them (`tlkeras.data.decode`); the backbone's
  preprocessing is inside the model.
- `serving_pixels`: input `image` (float32 [N, H, W, 3], raw 0-255 RGB at the model's size) for
  callers that decode and resize themselves.
- `serving_uint8`: input `image_tensor` (uint8 [N, H, W, 3], any size, one size per batch), as
  Model Garden's `image_tensor` exports: callers that decode but do not resize. The graph resizes
  as training does, so it answers as `serving_default` on the same decoded pixels.
- `tf_example`: input `examples` (string [N], serialized tf.train.Example with the encoded image
  under `image/encoded`), what TFX's Evaluator and BulkInferrer feed a model. Decoded as
  `serving_default` decodes.

What all return is the task's to say (`Task.serving_outputs`: a classifier's probabilities,
class ids and names and top-k; a regressor's predictions in the targets' units). A string that
is not an image fails the whole request with TensorFlow's `InvalidArgumentError` ("Unknown image
file format..."), which TF Serving returns as `{"error": ...}`: never a silent garbage answer.
`assets.extra/tf_serving_warmup_requests` holds real requests for every signature (TF Serving
replays them on load, and each signature is its own function to warm), so the first user request
is not the slow one, whichever signature it calls. The version is written to a hidden folder and
renamed into place, because TF Serving loads any integer-named folder it sees.
"""

import logging
import os
import shutil
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tlkeras.artifacts.contract import (
    IMAGE_BYTES_INPUT,
    LABELS_FILE,
    PIXELS_INPUT,
    PIXELS_SIGNATURE,
    SERVING_SIGNATURE,
    SIGNATURE_INPUTS,
    TF_EXAMPLE_IMAGE_KEY,
    TF_EXAMPLE_INPUT,
    TF_EXAMPLE_SIGNATURE,
    UINT8_INPUT,
    UINT8_SIGNATURE,
    WARMUP_FILE,
    next_version,
    write_labels,
)
from tlkeras.data.decode import decode_and_resize

log = logging.getLogger(__name__)


def export_saved_model(model: keras.Model, export_dir: str, output_names: list[str],
                       serving_outputs: Callable, warmup_pixels: np.ndarray,
                       pixel_budget: int) -> str:
    """Writes `model` as a new SavedModel version; returns the version's path.

    `serving_outputs` maps the model's output tensor to the signatures' dict of outputs (the
    task's). `warmup_pixels` ([N, H, W, 3] real images, 0-255) become the warm-up requests.
    `pixel_budget` bounds what `serving_default` decodes (`tlkeras.data.decode`).
    """
    os.makedirs(export_dir, exist_ok=True)
    version_dir = os.path.join(export_dir, str(next_version(export_dir)))
    partial_dir = os.path.join(export_dir, f".partial-{os.path.basename(version_dir)}")
    shutil.rmtree(partial_dir, ignore_errors=True)  # Left by a kill or a full disk.
    module, signatures = serving_module(model, serving_outputs, pixel_budget)
    try:
        tf.saved_model.save(module, partial_dir, signatures=signatures)
        if not write_warmup_requests(os.path.join(partial_dir, WARMUP_FILE),
                                     warmup_requests(warmup_pixels)):
            log.warning("No TF Serving warm-up requests in the export: they need the "
                        "tensorflow-serving-api package (`pip install 'tlkeras[serving]'`).")
        write_labels(os.path.join(partial_dir, LABELS_FILE), output_names)
        os.rename(partial_dir, version_dir)
    finally:
        shutil.rmtree(partial_dir, ignore_errors=True)
    return version_dir


def serving_module(model: keras.Model, serving_outputs: Callable, pixel_budget: int):
    """A `tf.Module` holding the model's variables once, and its signature functions.

    Not `model.export()` / `keras.export.ExportArchive`: in Keras 3.15 they store every weight
    twice (keras-team/keras#23553), doubling the artifact and the variable memory of every
    server that loads it. Tracking the underlying `tf.Variable`s that the signatures capture
    lets TensorFlow's checkpoint de-duplicate them. Dict outputs name the SignatureDef outputs.

    Every signature checks its input in the graph, because TF Serving feeds tensors without
    checking them against the signature: an image over `pixel_budget` is not decoded,
    `serving_pixels` refuses another size (a 64 px image on a 32 px model gave a confident
    answer) and NaN or infinite pixels (NaN probabilities, read as class 0), and `serving_uint8`
    refuses anything but non-empty [N, H, W, 3] images.
    """
    height, width = model.input.shape[1:3]

    def predictions(pixels):
        return serving_outputs(model(pixels, training=False))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_INPUT)])
    def serve_image_bytes(image_bytes):
        return predictions(decode_images(image_bytes, height, width, pixel_budget))

    @tf.function(input_signature=[
        tf.TensorSpec([None, height, width, 3], tf.float32, name=PIXELS_INPUT)])
    def serve_pixels(image):
        return predictions(checked_pixels(image, height, width))

    @tf.function(input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.uint8, name=UINT8_INPUT)])
    def serve_uint8(image_tensor):
        return predictions(resize_uint8(image_tensor, height, width))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=TF_EXAMPLE_INPUT)])
    def serve_tf_example(examples):
        return predictions(decode_images(encoded_images(examples), height, width, pixel_budget))

    module = tf.Module()
    module.model_variables = [variable.value for variable in model.variables]
    signatures = {SERVING_SIGNATURE: serve_image_bytes, PIXELS_SIGNATURE: serve_pixels,
                  UINT8_SIGNATURE: serve_uint8, TF_EXAMPLE_SIGNATURE: serve_tf_example}
    module.serve_image_bytes, module.serve_pixels = serve_image_bytes, serve_pixels
    module.serve_uint8, module.serve_tf_example = serve_uint8, serve_tf_example
    return module, signatures


def decode_images(image_bytes, height: int, width: int, pixel_budget: int):
    """Encoded images of any size -> float32 [N, height, width, 3], as the training pipeline."""
    return tf.map_fn(lambda encoded: decode_and_resize(encoded, height, width, pixel_budget),
                     image_bytes,
                     fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32))


def resize_uint8(image, height: int, width: int):
    """uint8 [N, H, W, 3] of any H, W -> float32 [N, height, width, 3], as the training pipeline.

    `tf.image.resize` of a batch runs the same bilinear kernel on each image as
    `tlkeras.data.decode` runs on one decoded uint8 image, so the same pixels give the same
    input. No pixel budget: the tensor is already in memory, and the output is the model's size.
    """
    shape = tf.shape(image)
    rank = tf.debugging.assert_equal(
        tf.size(shape), 4, message="serving_uint8 takes uint8 [N, H, W, 3] images")
    with tf.control_dependencies([rank]):
        valid = tf.debugging.assert_equal(
            tf.logical_and(tf.equal(shape[3], 3), tf.reduce_all(shape[1:3] > 0)), True,
            message="serving_uint8 takes uint8 [N, H, W, 3] RGB images with H, W > 0 (one size "
                    "per request; send images of other sizes in other requests)")
    with tf.control_dependencies([valid]):
        resized = tf.image.resize(image, (height, width))
    resized.set_shape((None, height, width, 3))
    return resized


def encoded_images(examples):
    """Serialized tf.train.Examples -> their `image/encoded` bytes, [N]; InvalidArgumentError
    naming the feature if one lacks it."""
    features = tf.io.parse_example(
        examples, {TF_EXAMPLE_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)})
    return features[TF_EXAMPLE_IMAGE_KEY]


def checked_pixels(image, height: int, width: int):
    """`image` unchanged, or InvalidArgumentError unless it is [N, height, width, 3] and finite."""
    size = tf.debugging.assert_equal(
        tf.shape(image)[1:], tf.constant([height, width, 3]),
        message=f"serving_pixels takes float32 [N, {height}, {width}, 3] images (0-255 RGB at "
                "the model's size); serving_default takes encoded images of any size")
    with tf.control_dependencies([size]):
        return tf.debugging.assert_all_finite(image, "serving_pixels got NaN or infinite pixels")


def encode_png(pixels: np.ndarray) -> list[bytes]:
    """uint8 [N, H, W, 3] -> N PNG files (lossless: they decode to the same pixels)."""
    return [tf.io.encode_png(image).numpy() for image in pixels]


def tf_example(encoded: bytes) -> bytes:
    """A serialized tf.train.Example holding one encoded image, as `tf_example` takes it."""
    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))
    return tf.train.Example(features=tf.train.Features(
        feature={TF_EXAMPLE_IMAGE_KEY: feature})).SerializeToString()


def warmup_requests(pixels: np.ndarray) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(signature, {input: batch}) for every signature, batches of 1 and N, from real images.

    Each signature is its own graph function, so warming only `serving_default` would leave the
    first request to each of the others slow. The images are the same in every form: the PNG of
    the rounded pixels, those pixels as uint8 and float32, that PNG in a tf.train.Example.
    """
    uint8 = np.round(pixels).clip(0, 255).astype(np.uint8)
    pngs = encode_png(uint8)
    batches = {SERVING_SIGNATURE: np.array(pngs, dtype=object),
               PIXELS_SIGNATURE: uint8.astype(np.float32),
               UINT8_SIGNATURE: uint8,
               TF_EXAMPLE_SIGNATURE: np.array([tf_example(png) for png in pngs], dtype=object)}
    sizes = [1] + ([len(pixels)] if len(pixels) > 1 else [])
    return [(signature, {SIGNATURE_INPUTS[signature]: batch[:size]})
            for signature, batch in batches.items() for size in sizes]


def write_warmup_requests(path: str, requests: list[tuple[str, dict[str, np.ndarray]]]) -> bool:
    """TF Serving's warm-up file: one PredictionLog record per (signature, inputs) request.

    Returns False, writing nothing, without the optional tensorflow-serving-api package: its
    wheels pin a TensorFlow minor version, so it is an extra (`tlkeras[serving]`), not a
    requirement of every install.
    """
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError:
        return False

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=signature))
            for name, batch in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(batch))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return True
