"""TFLite model metadata that on-device libraries read: the input's normalisation and the labels.

MediaPipe Tasks, the TFLite Task Library and ML Kit refuse an image model whose input has no
NormalizationOptions (tensorflow/tensorflow#47559), and name a classifier's scores from a
TENSOR_AXIS_LABELS file packed inside the .tflite. The metadata is a `ModelMetadata` flatbuffer
(file identifier M001) in one of the model's buffers, named TFLITE_METADATA in `Model.metadata`,
and the label file sits in an uncompressed zip archive appended to the flatbuffer.

Written here from the schema's generated Python classes that the `mediapipe` package ships
(`mediapipe.tasks.metadata`), as tflite-support's MetadataPopulator writes it, because neither
maintained writer installs beside TensorFlow 2.21: tflite-support's last release (0.4.4, 2023)
pins protobuf<4 (TensorFlow 2.21 needs >=6.31) and its compiled part needs the system libusb;
mediapipe's own `tasks.python.metadata` imports a compiled module that its wheels no longer ship
(checked 0.10.35 to 1.2.3). MediaPipe's ImageClassifier, which reads this metadata, is what the
tests load the models with.

The models take raw 0-255 pixels (the backbone's preprocessing is inside the model), so a float
input's normalisation is mean 0, std 1 (`(pixel - 0) / 1`); a quantised input's describes its
quantisation (`real = scale * (q - zero_point)`: mean = zero_point, std = 1 / scale).
"""

import io
import zipfile

import numpy as np

from tlkeras.errors import ConfigError

LABEL_FILE = "labels.txt"  # The packed label file's name, as the Task libraries name it.
METADATA_NAME = "TFLITE_METADATA"  # Where readers look for it in `Model.metadata`.
# The oldest metadata parser that reads every field written here: all are in schema 1.0.0.
MIN_PARSER_VERSION = "1.0.0"


def require_schema():
    """(metadata schema, TFLite model schema) modules; a ConfigError naming the extra if absent."""
    try:
        from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_schema
        from mediapipe.tasks.metadata import schema_py_generated as model_schema
    except ImportError:
        raise ConfigError("export_tflite", "writing TFLite metadata (labels and input "
                          "normalisation, read by MediaPipe Tasks, the TFLite Task Library and "
                          "ML Kit) needs the mediapipe package (its metadata schema)",
                          "Install it with `pip install 'tlkeras[tflite]'`, or drop "
                          "--export_tflite.") from None
    return metadata_schema, model_schema


def input_normalisation(model_buffer: bytes) -> tuple[float, float]:
    """(mean, std) such that (pixel - mean) / std is the value the model's input stands for."""
    _, model_schema = require_schema()
    subgraph = model_schema.Model.GetRootAsModel(model_buffer, 0).Subgraphs(0)
    tensor = subgraph.Tensors(subgraph.Inputs(0))
    if tensor.Type() == model_schema.TensorType.FLOAT32:
        return 0.0, 1.0
    quantization = tensor.Quantization()
    return float(quantization.ZeroPoint(0)), 1.0 / float(quantization.Scale(0))


def add_metadata(path: str, output_names: list[str], classifier: bool) -> dict:
    """Rewrites the .tflite at `path` with its metadata; returns what was written.

    A classifier gets the image-classifier metadata MediaPipe's ImageClassifier reads, with
    `output_names` packed as labels.txt; any other model (a regressor) gets the same input
    metadata and an output whose description names the outputs in order.
    """
    with open(path, "rb") as file:
        model_buffer = file.read()
    mean, std = input_normalisation(model_buffer)
    metadata = _model_metadata(model_buffer, mean, std, output_names, classifier)
    files = {LABEL_FILE: "".join(f"{name}\n" for name in output_names)} if classifier else {}
    with open(path, "wb") as file:
        file.write(populate(model_buffer, metadata, files))
    return {"norm_mean": mean, "norm_std": std, "label_file": LABEL_FILE if classifier else None}


def _model_metadata(model_buffer: bytes, mean: float, std: float, output_names: list[str],
                    classifier: bool):
    """The ModelMetadataT of a one-image-in, one-vector-out model, as the Task libraries expect."""
    schema, model_schema = require_schema()
    subgraph = model_schema.Model.GetRootAsModel(model_buffer, 0).Subgraphs(0)
    quantised = [subgraph.Tensors(subgraph.Inputs(0)).Type() != model_schema.TensorType.FLOAT32,
                 subgraph.Tensors(subgraph.Outputs(0)).Type() != model_schema.TensorType.FLOAT32]

    image = _tensor(schema, "image", "Input image: RGB pixels 0-255 at the model's size.",
                    schema.ContentProperties.ImageProperties, schema.ImagePropertiesT())
    image.content.contentProperties.colorSpace = schema.ColorSpaceType.RGB
    normalisation = schema.NormalizationOptionsT()
    normalisation.mean, normalisation.std = [mean], [std]
    image.processUnits = [_unit(schema, schema.ProcessUnitOptions.NormalizationOptions,
                                normalisation)]
    image.stats = _stats(schema, [0.0 if quantised[0] else -mean / std],
                         [255.0 if quantised[0] else (255.0 - mean) / std])

    if classifier:
        output = _tensor(schema, "probability", "Probabilities of the labels respectively.",
                         schema.ContentProperties.FeatureProperties, schema.FeaturePropertiesT())
        output.stats = _stats(schema, [0.0], [255.0 if quantised[1] else 1.0])
        labels = schema.AssociatedFileT()
        labels.name, labels.type = LABEL_FILE, schema.AssociatedFileType.TENSOR_AXIS_LABELS
        labels.description = "Labels for categories that the model can recognize."
        output.associatedFiles = [labels]
    else:
        output = _tensor(schema, "predictions", "Outputs in order: " + ", ".join(output_names),
                         schema.ContentProperties.FeatureProperties, schema.FeaturePropertiesT())

    graph = schema.SubGraphMetadataT()
    graph.inputTensorMetadata, graph.outputTensorMetadata = [image], [output]
    model = schema.ModelMetadataT()
    model.name = "tlkeras image " + ("classifier" if classifier else "regressor")
    model.description = "Transfer-learned image model exported by tlkeras."
    model.subgraphMetadata = [graph]
    model.minParserVersion = MIN_PARSER_VERSION
    return model


def _tensor(schema, name: str, description: str, content_type: int, properties):
    tensor = schema.TensorMetadataT()
    tensor.name, tensor.description = name, description
    tensor.content = schema.ContentT()
    tensor.content.contentPropertiesType = content_type
    tensor.content.contentProperties = properties
    return tensor


def _unit(schema, options_type: int, options):
    unit = schema.ProcessUnitT()
    unit.optionsType, unit.options = options_type, options
    return unit


def _stats(schema, minimum: list[float], maximum: list[float]):
    stats = schema.StatsT()
    stats.min, stats.max = minimum, maximum
    return stats


def populate(model_buffer: bytes, metadata, files: dict[str, str]) -> bytes:
    """The model with `metadata` in a TFLITE_METADATA buffer (replacing any) and `files` in a
    zip appended to it: tflite-support's MetadataPopulator layout (the model repacked with the
    flatbuffers object API, as it does). Stored, not deflated: the Task libraries memory-map
    the packed files."""
    import flatbuffers

    _, model_schema = require_schema()
    builder = flatbuffers.Builder(0)
    builder.Finish(metadata.Pack(builder), b"M001")
    model = model_schema.ModelT.InitFromObj(model_schema.Model.GetRootAsModel(model_buffer, 0))
    buffer = model_schema.BufferT()
    buffer.data = np.frombuffer(builder.Output(), dtype=np.uint8)  # Packed as one vector.
    model.buffers.append(buffer)
    entry = model_schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata = [item for item in (model.metadata or [])
                      if item.name not in (METADATA_NAME, METADATA_NAME.encode())] + [entry]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), b"TFL3")
    archive = io.BytesIO()
    archive.write(builder.Output())
    if files:
        with zipfile.ZipFile(archive, "a", zipfile.ZIP_STORED) as packed:
            for name, text in files.items():
                packed.writestr(name, text)
    return archive.getvalue()
