"""`tlkeras evaluate`: the evaluation report of any SavedModel export on any dataset split.

    tlkeras evaluate --model=runs/<run>/export --image_dir=data/fashion_mnist_mini \
        --split=test --report_dir=reports/fashion-test

Loads the export with TensorFlow alone (its `serving_pixels` signature, the newest version unless
a version folder is given), predicts the split and writes report.json, confusion_matrix.png,
misclassified.png and TensorBoard image summaries (`<report_dir>/logs`) into `--report_dir`,
which must not exist yet. Its only data flags are the ones that choose and batch the data:
--image_dir or --dataset/--data_dir, and --batch_size; plus --top_k.
"""

import os
import sys

from absl import app, flags

from tlkeras.cli import common
from tlkeras.cli import flags as config_flags
from tlkeras.config import DataConfig, ExportConfig
from tlkeras.errors import ConfigError

DATA_FLAGS = ("dataset", "data_dir", "image_dir", "batch_size")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    config_flags.define_group(DataConfig, only=DATA_FLAGS, flag_values=flag_values)
    config_flags.define_group(ExportConfig, only=("top_k",), flag_values=flag_values)
    flags.DEFINE_string("model", None, "Export folder (its highest integer version is used) or "
                        "one version folder.", required=True, flag_values=flag_values)
    flags.DEFINE_string("split", "test", "Split to evaluate: TFDS split name, or subfolder of "
                        "--image_dir.", flag_values=flag_values)
    flags.DEFINE_string("report_dir", None, "New folder for the report.", required=True,
                        flag_values=flag_values)


def evaluate_export(data: DataConfig, top_k: int, model_path: str, split: str,
                    report_dir: str) -> dict:
    """Writes the report of the export at `model_path` on `split` into `report_dir`."""
    from tlkeras import data as datasets
    from tlkeras.artifacts.contract import CLASSIFIER_OUTPUT, PIXELS_INPUT, ExportedModel
    from tlkeras.data.sources import LABEL_CLASSES
    from tlkeras.reporting import classification as report

    data.validate()  # Exactly one source, a positive --batch_size: as training checks them.
    ExportConfig(top_k=top_k).validate()
    if os.path.exists(report_dir):
        raise ConfigError("report_dir", f"{report_dir!r} already exists",
                          "Pass a new --report_dir; earlier reports are never overwritten.")
    exported = ExportedModel.open(model_path)
    if not exported.is_classifier():
        raise ConfigError("model", f"{exported.path!r} is a regression export, and this report "
                          "is for classifiers", "For a regressor, read report/<phase>/report.json "
                          "in its run folder (MAE, RMSE, R^2 per target on the test split).")
    batches, class_names, skipped = datasets.load_split(data, LABEL_CLASSES, 0, split,
                                                        exported.input_size())
    _check_classes(exported.labels(), class_names)
    serve = exported.signature()
    predictions = report.collect_predictions(
        lambda images: serve(**{PIXELS_INPUT: images})[CLASSIFIER_OUTPUT], batches)
    result = report.write_report(predictions, class_names, top_k, report_dir,
                                 os.path.join(report_dir, "logs"),
                                 title=f"{split} split, {exported.path}")
    if skipped:
        print(f"Skipped {len(skipped)} unreadable file(s): {', '.join(skipped[:20])}",
              file=sys.stderr)
    print(f"Report: {os.path.join(report_dir, 'report.json')}")
    return result


def _check_classes(exported: list[str] | None, class_names: list[str]) -> None:
    if exported is not None and exported != class_names:  # None: an export without labels.
        raise ConfigError("split", f"the split's classes {class_names} differ from the "
                          f"export's {exported}", "Evaluate on data with the classes the "
                          "model was trained on, in the same order.")


def main(argv):
    with common.user_errors(on_interrupt=""):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag.")
        data = config_flags.read_group(DataConfig)
        top_k = config_flags.read_group(ExportConfig).top_k
        values = flags.FLAGS
        evaluate_export(data, top_k, values.model, values.split, values.report_dir)
