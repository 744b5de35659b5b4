"""SavedModel export in TF Serving's layout: `<export_dir>/<integer version>/`, tag `serve`.

Uses Keras 3's `keras.export.ExportArchive` (Keras 3 has no `save_format="tf"`). The endpoint
returns a dict so the SignatureDef output is named `probabilities` rather than `output_0`. The
archive is written to a hidden temporary folder and renamed into place, because TF Serving loads
any integer-named folder it sees and must never see a half-written one.
"""

import os

import keras
import tensorflow as tf

SERVING_SIGNATURE = "serving_default"


def next_version(export_dir: str) -> int:
    """One more than the highest integer version present, so no export overwrites another."""
    versions = [int(name) for name in os.listdir(export_dir) if name.isdigit()] \
        if os.path.isdir(export_dir) else []
    return max(versions, default=0) + 1


def export_saved_model(model: keras.Model, export_dir: str) -> str:
    """Writes `model` as a new SavedModel version; returns the version's path."""
    image_shape = tuple(model.input.shape[1:])

    def serve(image):
        return {"probabilities": model(image, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SERVING_SIGNATURE, fn=serve,
        input_signature=[tf.TensorSpec((None, *image_shape), tf.float32, name="image")])
    os.makedirs(export_dir, exist_ok=True)
    version_dir = os.path.join(export_dir, str(next_version(export_dir)))
    partial_dir = os.path.join(export_dir, f".partial-{os.path.basename(version_dir)}")
    archive.write_out(partial_dir, verbose=False)
    os.rename(partial_dir, version_dir)
    return version_dir
