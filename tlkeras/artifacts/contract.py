"""The exported model's contract: one owner for everything a reader of an export relies on.

An export is TF Serving's layout, `<export_dir>/<integer version>/` (the highest version is
served), holding `saved_model.pb`, `variables/` and `assets.extra/` with `labels.txt` (line i
names output i: class id i, or regression column i) and TF Serving's warm-up requests. Its
signatures and their input names are fixed here, and `ExportedModel` resolves, reads and loads an
export for every tool that consumes one (predict, evaluate, distillation, rest-request), so none
of them repeats a path or a name.

Importing this module loads neither TensorFlow nor Keras, so command-line tools resolve paths and
read labels before paying for either; `ExportedModel.signature` imports TensorFlow when called.
"""

import dataclasses
import os

from tlkeras.errors import ConfigError

SERVING_SIGNATURE = "serving_default"  # Encoded image bytes in: what TF Serving calls by default.
PIXELS_SIGNATURE = "serving_pixels"  # Float32 raw 0-255 pixels at the model's size in.
IMAGE_BYTES_INPUT = "image_bytes"  # TF Serving's REST API decodes {"b64": ...} into it.
PIXELS_INPUT = "image"
# uint8 [N, H, W, 3] of any size in, resized in the graph: raw pixels cost ~4 JSON bytes each
# over REST, floats ~18. The names are Model Garden's (`image_tensor` input type).
UINT8_SIGNATURE = "serving_uint8"
UINT8_INPUT = "image_tensor"
# Serialized tf.train.Example in, as TFX's Evaluator (TFMA) and BulkInferrer send them. The
# image is under `image/encoded`, the key of TFDS, Model Garden and TF Object Detection records.
TF_EXAMPLE_SIGNATURE = "tf_example"
TF_EXAMPLE_INPUT = "examples"
TF_EXAMPLE_IMAGE_KEY = "image/encoded"
# Every signature and its one input, in the order README's table lists them.
SIGNATURE_INPUTS = {SERVING_SIGNATURE: IMAGE_BYTES_INPUT, PIXELS_SIGNATURE: PIXELS_INPUT,
                    UINT8_SIGNATURE: UINT8_INPUT, TF_EXAMPLE_SIGNATURE: TF_EXAMPLE_INPUT}
CLASSIFIER_OUTPUT = "probabilities"  # A classifier's signatures return it; a regressor's don't.
REGRESSOR_OUTPUT = "predictions"  # A regressor's: [N, targets] in the targets' own units.
LABELS_FILE = os.path.join("assets.extra", "labels.txt")
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def write_labels(path: str, names: list[str]) -> str:
    """One name per line, line i naming output i: the format of every labels file tlkeras writes."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as file:
        file.write("".join(f"{name}\n" for name in names))
    return path


def read_labels(path: str) -> list[str]:
    with open(path) as file:
        return file.read().splitlines()


def next_version(export_dir: str) -> int:
    """One more than the highest integer version present, so no export overwrites another."""
    return max(_versions(export_dir), default=0) + 1


def version_dir(model_path: str, flag: str = "model") -> str:
    """The version folder: `model_path` itself if it holds a SavedModel, else its newest version."""
    if os.path.isfile(os.path.join(model_path, "saved_model.pb")):
        return model_path
    versions = _versions(model_path)
    if not versions:
        raise ConfigError(flag, f"{model_path!r} holds no saved_model.pb and no integer "
                          "version folder", "Pass runs/<run>/export or runs/<run>/export/<N>.")
    return os.path.join(model_path, str(max(versions)))


def _versions(export_dir: str) -> list[int]:
    return [int(name) for name in os.listdir(export_dir) if name.isdigit()] \
        if os.path.isdir(export_dir) else []


@dataclasses.dataclass
class ExportedModel:
    """One export version: its path, labels, and (loaded on demand) its signatures."""

    path: str  # The version folder.

    @classmethod
    def open(cls, path: str, flag: str = "model") -> "ExportedModel":
        """A run folder, its `export/` folder or one version; the newest version is taken."""
        export_dir = os.path.join(path, "export")
        return cls(version_dir(export_dir if os.path.isdir(export_dir) else path, flag))

    @property
    def labels_path(self) -> str:
        return os.path.join(self.path, LABELS_FILE)

    def labels(self) -> list[str] | None:
        """The output names, or None for an export written before labels were stored."""
        return read_labels(self.labels_path) if os.path.exists(self.labels_path) else None

    def load(self):
        """The loaded SavedModel (TensorFlow only, no Keras and no tlkeras training code)."""
        if not hasattr(self, "_loaded"):
            import tensorflow as tf

            self._loaded = tf.saved_model.load(self.path)
        return self._loaded

    def signature(self, name: str = PIXELS_SIGNATURE):
        return self.load().signatures[name]

    def input_size(self) -> int:
        """The square pixel size that `serving_pixels` takes."""
        spec = self.signature().structured_input_signature[1][PIXELS_INPUT]
        return int(spec.shape[1])

    def is_classifier(self) -> bool:
        return CLASSIFIER_OUTPUT in self.signature().structured_outputs

    def parameters(self) -> int:
        """Trainable-type (floating) parameters held by the export's variables."""
        import numpy as np

        return sum(int(np.prod(variable.shape)) for variable in self.load().model_variables
                   if variable.dtype.is_floating)
