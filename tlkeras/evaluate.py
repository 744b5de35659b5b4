"""The evaluation report of any SavedModel export on any dataset split.

    python -m tlkeras.evaluate --model=runs/<run>/export --image_dir=data/fashion_mnist_mini \
        --split=test --report_dir=reports/fashion-test

Loads the export with TensorFlow alone (its `serving_pixels` signature, the newest version unless
a version folder is given), predicts the split and writes report.json, confusion_matrix.png,
misclassified.png and TensorBoard image summaries (`<report_dir>/logs`) into `--report_dir`,
which must not exist yet. Data flags as in training: --image_dir or --dataset/--data_dir, and
--batch_size, --top_k.
"""

import os
import sys

from absl import app, flags

from tlkeras import config as tlkeras_config  # Defines the data flags shared with training.
from tlkeras.errors import ConfigError
from tlkeras.versions import LABELS_FILE, version_dir

_MODEL = flags.DEFINE_string("model", None, "Export folder (its highest integer version is "
                             "used) or one version folder.", required=True)
_SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate: TFDS split name, or subfolder "
                             "of --image_dir.")
_REPORT_DIR = flags.DEFINE_string("report_dir", None, "New folder for the report.",
                                  required=True)
EXIT_CONFIG_ERROR = 2


def evaluate_export(config: tlkeras_config.Config, model_path: str, split: str,
                    report_dir: str) -> dict:
    """Writes the report of the export at `model_path` on `split` into `report_dir`."""
    import tensorflow as tf

    from tlkeras import data, export, report

    if os.path.exists(report_dir):
        raise ConfigError("report_dir", f"{report_dir!r} already exists",
                          "Pass a new --report_dir; earlier reports are never overwritten.")
    model_dir = version_dir(model_path)
    serve = tf.saved_model.load(model_dir).signatures[export.PIXELS_SIGNATURE]
    if "probabilities" not in serve.structured_outputs:
        raise ConfigError("model", f"{model_dir!r} is a regression export, and this report is "
                          "for classifiers", "For a regressor, read report/<phase>/report.json "
                          "in its run folder (MAE, RMSE, R^2 per target on the test split).")
    image_size = int(serve.structured_input_signature[1][export.PIXELS_INPUT].shape[1])
    batches, class_names, skipped = data.load_split(config, split, image_size)
    _check_classes(os.path.join(model_dir, LABELS_FILE), class_names)
    predictions = report.collect_predictions(
        lambda images: serve(**{export.PIXELS_INPUT: images})["probabilities"], batches)
    result = report.write_report(predictions, class_names, config.top_k, report_dir,
                                 os.path.join(report_dir, "logs"),
                                 title=f"{split} split, {model_dir}")
    if skipped:
        print(f"Skipped {len(skipped)} unreadable file(s): {', '.join(skipped[:20])}",
              file=sys.stderr)
    print(f"Report: {os.path.join(report_dir, 'report.json')}")
    return result


def _check_classes(labels_path: str, class_names: list[str]) -> None:
    if not os.path.exists(labels_path):  # Exports before labels were stored: trust the data.
        return
    with open(labels_path) as file:
        exported = file.read().splitlines()
    if exported != class_names:
        raise ConfigError("split", f"the split's classes {class_names} differ from the "
                          f"export's {exported}", "Evaluate on data with the classes the "
                          "model was trained on, in the same order.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    values = flags.FLAGS
    try:
        config = tlkeras_config.Config(dataset=values.dataset, data_dir=values.data_dir,
                                       image_dir=values.image_dir, batch_size=values.batch_size,
                                       top_k=values.top_k)
        if bool(config.dataset) == bool(config.image_dir):
            raise ConfigError("image_dir", "give exactly one data source",
                              "Pass --image_dir=<folder> or --dataset=<TFDS name>.")
        evaluate_export(config, _MODEL.value, _SPLIT.value, _REPORT_DIR.value)
    except ConfigError as error:
        print(f"tlkeras: error: {error}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)


if __name__ == "__main__":
    app.run(main)
