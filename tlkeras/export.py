"""SavedModel export that a TF Serving team deploys unchanged.

Layout `<export_dir>/<integer version>/` (tag `serve`), a new version per export. Signatures:

- `serving_default`: input `image_bytes` (string [N], encoded JPEG/PNG/GIF/BMP of any size), so
  TF Serving's REST API takes `{"instances": [{"b64": "..."}]}`. Decoding and resizing happen in
  the graph, exactly as the training pipeline does them (`tf.io.decode_image` then bilinear
  `tf.image.resize`); the backbone's preprocessing is inside the model.
- `serving_pixels`: input `image` (float32 [N, H, W, 3], raw 0-255 RGB at the model's size) for
  callers that decode themselves.

Both return `probabilities` [N, classes], `class_ids` [N], `class_names` [N] (labels baked in),
`top_k_scores`, `top_k_class_ids`, `top_k_class_names` [N, k]; a regression model returns
`predictions` [N, targets] in the targets' own units instead. A string that is not an image fails
the whole request with TensorFlow's `InvalidArgumentError` ("Unknown image file format..."), which
TF Serving returns as `{"error": ...}`: never a silent garbage answer.

`assets.extra/labels.txt` lists the class names (line i is class id i), or the regression
targets (line i is column i of `predictions`), for tools such as
`python -m tlkeras.evaluate`. `assets.extra/tf_serving_warmup_requests` holds real requests
that TF Serving replays on load, so the first user request is not the slow one. The version is
written to a hidden folder and renamed into place, because TF Serving loads any integer-named
folder it sees.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from tlkeras.imaging import decode_and_resize
from tlkeras.versions import LABELS_FILE, next_version

SERVING_SIGNATURE = "serving_default"
PIXELS_SIGNATURE = "serving_pixels"
IMAGE_BYTES_INPUT = "image_bytes"
PIXELS_INPUT = "image"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def export_saved_model(model: keras.Model, export_dir: str, class_names: list[str],
                       warmup_pixels: np.ndarray, top_k: int = 5,
                       regression: bool = False) -> str:
    """Writes `model` as a new SavedModel version; returns the version's path.

    `class_names` are the regression target names when `regression`. `warmup_pixels`
    ([N, H, W, 3] real images, 0-255) become the PNG warm-up requests.
    """
    os.makedirs(export_dir, exist_ok=True)
    version_dir = os.path.join(export_dir, str(next_version(export_dir)))
    partial_dir = os.path.join(export_dir, f".partial-{os.path.basename(version_dir)}")
    module, signatures = serving_module(model, class_names, top_k, regression)
    tf.saved_model.save(module, partial_dir, signatures=signatures)
    write_warmup_requests(os.path.join(partial_dir, WARMUP_FILE), encode_png(warmup_pixels))
    with open(os.path.join(partial_dir, LABELS_FILE), "w") as file:
        file.write("".join(f"{name}\n" for name in class_names))
    os.rename(partial_dir, version_dir)
    return version_dir


def serving_module(model: keras.Model, class_names: list[str], top_k: int,
                   regression: bool = False):
    """A `tf.Module` holding the model's variables once, and its two signature functions.

    Not `model.export()` / `keras.export.ExportArchive`: in Keras 3.15 they store every weight
    twice (keras-team/keras#23553), doubling the artifact and the variable memory of every
    server that loads it. Tracking the underlying `tf.Variable`s that the signatures capture
    lets TensorFlow's checkpoint de-duplicate them. Dict outputs name the SignatureDef outputs.
    """
    height, width = model.input.shape[1:3]
    k = min(top_k, len(class_names))

    def classify(pixels):
        labels = tf.constant(class_names)
        probabilities = model(pixels, training=False)
        class_ids = tf.argmax(probabilities, axis=-1)
        top_k_scores, top_k_ids = tf.math.top_k(probabilities, k=k)
        return {"probabilities": probabilities, "class_ids": class_ids,
                "class_names": tf.gather(labels, class_ids), "top_k_scores": top_k_scores,
                "top_k_class_ids": tf.cast(top_k_ids, tf.int64),
                "top_k_class_names": tf.gather(labels, top_k_ids)}

    def regress(pixels):
        return {"predictions": model(pixels, training=False)}

    predictions = regress if regression else classify

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_INPUT)])
    def serve_image_bytes(image_bytes):
        return predictions(decode_images(image_bytes, height, width))

    @tf.function(input_signature=[
        tf.TensorSpec([None, height, width, 3], tf.float32, name=PIXELS_INPUT)])
    def serve_pixels(image):
        return predictions(image)

    module = tf.Module()
    module.model_variables = [variable.value for variable in model.variables]
    module.serve_image_bytes, module.serve_pixels = serve_image_bytes, serve_pixels
    return module, {SERVING_SIGNATURE: serve_image_bytes, PIXELS_SIGNATURE: serve_pixels}


def decode_images(image_bytes, height: int, width: int):
    """Encoded images of any size -> float32 [N, height, width, 3], as the training pipeline."""
    return tf.map_fn(lambda encoded: decode_and_resize(encoded, height, width), image_bytes,
                     fn_output_signature=tf.TensorSpec((height, width, 3), tf.float32))


def encode_png(pixels: np.ndarray) -> list[bytes]:
    return [tf.io.encode_png(tf.cast(tf.round(image), tf.uint8)).numpy() for image in pixels]


def write_warmup_requests(path: str, images: list[bytes]) -> None:
    """TF Serving's warm-up file: PredictionLog records, one with each batch size 1 and N."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for batch in [images[:1]] + ([images] if len(images) > 1 else []):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=SERVING_SIGNATURE))
            request.inputs[IMAGE_BYTES_INPUT].CopyFrom(tf.make_tensor_proto(batch))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
