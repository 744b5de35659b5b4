"""`tlkeras evaluate`: the evaluation report of any SavedModel export on any dataset split.

    tlkeras evaluate --model=runs/<run>/export --image_dir=data/fashion_mnist_mini \
        --split=test --report_dir=reports/fashion-test

Loads the export with TensorFlow alone (its `serving_pixels` signature, the newest version unless
a version folder is given), predicts the split and writes report.json, confusion_matrix.png,
misclassified.png and TensorBoard image summaries (`<report_dir>/logs`) into `--report_dir`,
which must not exist yet. Its only data flags are the ones that choose, carve and batch the
data: --image_dir or --dataset/--data_dir, --seed, --validation_fraction, --test_fraction and
--batch_size; plus --top_k.

A flat --image_dir (`<image_dir>/<class>/<image>`, no split folders) is carved into train,
validation and test from --seed, --validation_fraction and --test_fraction, exactly as training
carved it with the same values. Those not given on the command line, and the split flags that
decide whether a test was carved, are taken from the run.json of the run that holds the export
(when the export is still in its run folder), so `--split=test` gets the run's test images.
"""

import dataclasses
import json
import os
import sys

from absl import app, flags

from tlkeras.cli import common
from tlkeras.cli import flags as config_flags
from tlkeras.config import DataConfig, ExportConfig, RuntimeConfig
from tlkeras.errors import ConfigError

# The flags that choose, carve and batch the data (`seed` is the runtime group's).
DATA_FLAGS = ("dataset", "data_dir", "image_dir", "batch_size", "seed", "validation_fraction",
              "test_fraction")
# What a flat folder's carve depends on (tlkeras.data.carve), recorded in the run's run.json.
CARVE_FLAGS = ("seed", "validation_fraction", "test_fraction")
SPLIT_FIELDS = ("train_split", "validation_split", "test_split")  # Not evaluate's flags.
RUN_FILE = "run.json"


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    config_flags.define_group(DataConfig, only=DATA_FLAGS, flag_values=flag_values)
    config_flags.define_group(RuntimeConfig, only=DATA_FLAGS, flag_values=flag_values)
    config_flags.define_group(ExportConfig, only=("top_k",), flag_values=flag_values)
    flags.DEFINE_string("model", None, "Export folder (its highest integer version is used) or "
                        "one version folder.", required=True, flag_values=flag_values)
    flags.DEFINE_string("split", "test", "Split to evaluate: TFDS split name, subfolder of "
                        "--image_dir, or for a flat --image_dir (class folders only) train, "
                        "validation or test as the run carved them.", flag_values=flag_values)
    flags.DEFINE_string("report_dir", None, "New folder for the report.", required=True,
                        flag_values=flag_values)


def evaluate_export(data: DataConfig, top_k: int, model_path: str, split: str,
                    report_dir: str, seed: int = RuntimeConfig.seed) -> dict:
    """Writes the report of the export at `model_path` on `split` into `report_dir`.

    `seed` carves a flat --image_dir (with the fractions in `data`) as training did.
    """
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
    batches, class_names, skipped = datasets.load_split(data, LABEL_CLASSES, seed, split,
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


def run_carve_settings(model_path: str, given: set[str]) -> dict:
    """The carve flags not in `given`, and the split fields, from the run.json of the run that
    holds the export at `model_path` (a run folder, its export/ or a version folder); {} when
    there is none (an export copied elsewhere: the flags' values then carve)."""
    path = os.path.normpath(model_path)
    for folder in (path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
        run_file = os.path.join(folder, RUN_FILE)
        if os.path.isfile(run_file):
            with open(run_file) as file:
                recorded = json.load(file)
            return {field: recorded[field] for field in (*CARVE_FLAGS, *SPLIT_FIELDS)
                    if field in recorded and field not in given}
    return {}


def main(argv):
    with common.user_errors(on_interrupt=""):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag.")
        values = flags.FLAGS
        data = config_flags.read_group(DataConfig)
        seed = config_flags.read_group(RuntimeConfig).seed
        given = {name for name in CARVE_FLAGS if values[name].present}
        recorded = run_carve_settings(values.model, given) if data.image_dir else {}
        if recorded:
            from tlkeras.data.image_folder import flat_layout

            seed = recorded.pop("seed", seed)
            data = dataclasses.replace(data, **recorded)
            if flat_layout(data):
                print(f"Carving {data.image_dir} as the run did: --seed={seed} "
                      f"--validation_fraction={data.validation_fraction} --test_fraction="
                      f"{data.test_fraction}{'' if data.test_split else ' (no test)'}",
                      file=sys.stderr)
        top_k = config_flags.read_group(ExportConfig).top_k
        evaluate_export(data, top_k, values.model, values.split, values.report_dir, seed)
