"""Top-k predictions from an exported SavedModel, using nothing but TensorFlow.

    tlkeras predict --model=runs/<run>/export IMAGE_OR_FOLDER...

Loads the export (the highest version, or the version folder given) and sends the files' bytes
through its `serving_default` signature, as TF Serving would: no training code, no Keras model.
A classifier's top-k classes are printed; a regressor's targets, by the names in its labels file.
Folders are searched for images. A bad flag or export, or no existing path at all, is an error
before anything is predicted (exit 2). A file that is missing or that the model cannot decode is
reported on stderr and the others are still predicted; the exit status is then 1 (0 when every
image was predicted).
"""

import json
import sys

from absl import flags

from tlkeras.artifacts.contract import (
    IMAGE_BYTES_INPUT,
    REGRESSOR_OUTPUT,
    SERVING_SIGNATURE,
    ExportedModel,
)
from tlkeras.cli import common


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    flags.DEFINE_string("model", None, "Export folder (its highest integer version is used) or "
                        "one version folder.", required=True, flag_values=flag_values)
    flags.DEFINE_integer("top_k", 3, "Classes printed per image (at most the export's --top_k, "
                         "5 by default).", flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 32, "Images per call of the signature.",
                         flag_values=flag_values)
    flags.DEFINE_bool("json", False, "One JSON object per line instead of text.",
                      flag_values=flag_values)


def predict_files(serve, paths: list[str], batch_size: int):
    """Yields (path, outputs, None) or (path, None, error) for every file."""
    for start in range(0, len(paths), batch_size):
        yield from _predict_batch(serve, paths[start:start + batch_size])


def _predict_batch(serve, paths: list[str]):
    import tensorflow as tf

    readable, contents = [], []
    for path in paths:
        try:
            with open(path, "rb") as file:
                contents.append(file.read())
            readable.append(path)
        except OSError as error:
            yield path, None, str(error)
    if not readable:
        return
    try:
        outputs = serve(**{IMAGE_BYTES_INPUT: tf.constant(contents)})
    except tf.errors.InvalidArgumentError as error:  # A file that is not an image.
        if len(readable) == 1:
            yield readable[0], None, _reason(error.message)
        else:  # One request fails as a whole: retry one by one to predict the good files.
            for path in readable:
                yield from _predict_batch(serve, [path])
        return
    for index, path in enumerate(readable):
        yield path, {name: value[index].numpy() for name, value in outputs.items()}, None


def _reason(message: str) -> str:
    """TensorFlow's own sentence from a graph error, without node and op trailers."""
    lines = [line.strip() for line in message.splitlines()]
    return [line for line in lines if line and not line.startswith("[[")][-1]


def format_prediction(path: str, outputs: dict, top_k: int, as_json: bool,
                      target_names: list[str] = ()) -> str:
    if REGRESSOR_OUTPUT in outputs:
        values = {name: float(value) for name, value in
                  zip(target_names, outputs[REGRESSOR_OUTPUT], strict=True)}
        if as_json:
            return json.dumps({"path": path, "predictions": values})
        return f"{path}: " + ", ".join(f"{name} {value:.4g}" for name, value in values.items())
    top = [(name.decode(), float(score)) for name, score in
           zip(outputs["top_k_class_names"][:top_k], outputs["top_k_scores"][:top_k],
               strict=True)]
    if as_json:
        return json.dumps({"path": path, "top_k": [{"class_name": name, "score": score}
                                                   for name, score in top]})
    return f"{path}: " + ", ".join(f"{name} {score:.3f}" for name, score in top)


def main(argv):
    with common.user_errors(on_interrupt=""):
        paths = common.image_paths(argv[1:], missing_ok=True)
        common.require_at_least_one("batch_size", "images per call of the signature")
        common.require_at_least_one("top_k", "classes printed per image")
        exported = ExportedModel.open(flags.FLAGS.model)
        failures = _print_predictions(exported, paths)
    if failures:
        print(f"{failures} of {len(paths)} files could not be read as images.", file=sys.stderr)
        sys.exit(1)


def _print_predictions(exported: ExportedModel, paths: list[str]) -> int:
    """Prints every prediction, and every file that could not be predicted on stderr; returns
    how many could not."""
    serve = exported.signature(SERVING_SIGNATURE)
    target_names = exported.labels()
    failures = 0
    for path, outputs, error in predict_files(serve, paths, flags.FLAGS.batch_size):
        if error is not None:
            failures += 1
            print(f"{path}: cannot predict: {error}", file=sys.stderr)
        else:
            print(format_prediction(path, outputs, flags.FLAGS.top_k, flags.FLAGS.json,
                                    target_names))
    return failures
