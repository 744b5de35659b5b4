"""Run configuration: the absl flags users set, and the plain `Config` the library reads.

Flags are defined here and nowhere else, so `--helpfull` and `--flagfile` see them all. The rest of
the package takes a `Config` (a frozen dataclass) rather than reading global flags, which keeps
every function testable with a config built in Python.
"""

import dataclasses
import re

from absl import flags

from tlkeras.errors import ConfigError

TFLITE_VARIANTS = ("float32", "float16", "dynamic_int8")

# Flag groups, in the order `--helpfull` lists them (absl groups flags by module name).
DATA = "tlkeras (1) data"
MODEL = "tlkeras (2) model"
PHASE1 = "tlkeras (3) phase 1: feature extraction"
PHASE2 = "tlkeras (4) phase 2: fine-tuning"
DISTILL = "tlkeras (5) knowledge distillation"
EXPORT = "tlkeras (6) export"
RUNTIME = "tlkeras (7) outputs and runtime"

# Data.
flags.DEFINE_string("dataset", None, "TFDS image-classification dataset name, e.g. `cifar10`. "
                    "Give exactly one of --dataset or --image_dir.", module_name=DATA)
flags.DEFINE_string("data_dir", None, "TFDS data directory (default: TFDS' own, "
                    "~/tensorflow_datasets). Only used with --dataset.", module_name=DATA)
flags.DEFINE_string("image_dir", None, "Folder of images: <image_dir>/<split>/<class>/<image> for "
                    "the splits named by --train_split, --validation_split and --test_split.",
                    module_name=DATA)
flags.DEFINE_string("train_split", "train", "Training split (TFDS split, or subfolder of "
                    "--image_dir).", module_name=DATA)
flags.DEFINE_string("validation_split", "", "Validation split. Empty: carve "
                    "--validation_fraction out of the training split (an image folder without "
                    "this subfolder is carved too).", module_name=DATA)
flags.DEFINE_string("test_split", "test", "Test split, evaluated after each phase. Empty: no test "
                    "evaluation.", module_name=DATA)
flags.DEFINE_float("validation_fraction", 0.1, "Fraction of the training split held out for "
                   "validation when there is no validation split.", module_name=DATA)
flags.DEFINE_integer("batch_size", 32, "Batch size per replica for both phases (one replica "
                     "unless --strategy distributes).", module_name=DATA)
flags.DEFINE_integer("shuffle_buffer", 10000, "Shuffle buffer size (examples) for training.",
                     module_name=DATA)
flags.DEFINE_integer("cache_memory_mb", 2048, "Keep decoded, resized images in memory (tf.data "
                     "cache) when all splits together fit in this many MB; 0 turns it off.",
                     module_name=DATA)
flags.DEFINE_bool("deterministic", True, "Reproducible runs: tf.data keeps its element order "
                  "and TensorFlow ops run deterministically "
                  "(tf.config.experimental.enable_op_determinism), so the same --seed gives the "
                  "same metrics on CPU. False is faster and not reproducible.", module_name=DATA)
flags.DEFINE_bool("augment_flip", False, "Random horizontal flips while training (Keras layer).",
                  module_name=DATA)
flags.DEFINE_float("augment_translate", 0.0, "Random translation while training, as a fraction of "
                   "the image size (Keras layer); 0 turns it off.", module_name=DATA)

# Model.
flags.DEFINE_string("backbone", "MobileNetV2", "keras.applications model name, e.g. MobileNetV2, "
                    "EfficientNetV2B0, ResNet50, ConvNeXtTiny.", module_name=MODEL)
flags.DEFINE_string("weights", "imagenet", "Backbone weights: `imagenet` (Keras download, cached "
                    "in ~/.keras/models), `none` (random), or a path to a .weights.h5 file.",
                    module_name=MODEL)
flags.DEFINE_integer("image_size", 0, "Square input size in pixels; 0 uses the backbone's "
                     "default (224 for most).", module_name=MODEL)
flags.DEFINE_bool("list_backbones", False, "Print every backbone with its default input size "
                  "and parameter count, then exit.", module_name=MODEL)
flags.DEFINE_float("dropout", 0.2, "Dropout rate before the new Dense head.", module_name=MODEL)
flags.DEFINE_enum("task", "classification", ["classification", "regression"], "What the head "
                  "predicts. classification: one class per image (softmax head, class folders "
                  "or a TFDS class label). regression: one or more real numbers per image "
                  "(linear head) from <image_dir>/<split>.csv (header `path,<target>...`, paths "
                  "relative to <image_dir>/<split>/) or a TFDS dataset with a numeric label; "
                  "targets are normalised with the training split's mean and deviation and "
                  "the model, checkpoint and export predict in the original units.",
                  module_name=MODEL)
flags.DEFINE_enum("regression_loss", "mse", ["mse", "huber"], "--task=regression loss, on "
                  "targets scaled to unit variance (Huber with delta 1 resists outliers).",
                  module_name=MODEL)

# Phase 1: feature extraction.
flags.DEFINE_integer("epochs", 5, "Phase 1 epochs: frozen backbone, new head trained.",
                     module_name=PHASE1)
flags.DEFINE_enum("feature_cache", "auto", ["auto", "on", "off"], "Phase 1 runs the frozen "
                  "backbone once per image and trains the head on cached features (in memory, "
                  "or on disk in the run folder when over --cache_memory_mb). auto: on unless "
                  "random augmentation is on; on: also with augmentation (phase 1 then trains "
                  "on unaugmented images); off: the backbone runs every epoch.", module_name=PHASE1)
flags.DEFINE_string("optimizer", "adam", "Phase 1 optimizer (a keras.optimizers name).",
                    module_name=PHASE1)
flags.DEFINE_float("learning_rate", 1e-3, "Phase 1 learning rate.", module_name=PHASE1)

# Phase 2: fine-tuning.
flags.DEFINE_integer("fine_tune_epochs", 5, "Phase 2 epochs with the top of the backbone "
                     "unfrozen; 0 skips phase 2.", module_name=PHASE2)
flags.DEFINE_string("fine_tune_optimizer", "adam", "Phase 2 optimizer (a keras.optimizers name).",
                    module_name=PHASE2)
flags.DEFINE_float("fine_tune_learning_rate", 1e-5, "Phase 2 learning rate; keep it 10-100x "
                   "below --learning_rate so the pretrained features are not wrecked.",
                   module_name=PHASE2)
flags.DEFINE_string("unfreeze", "0.3", "What phase 2 unfreezes, counted from the top of the "
                    "backbone: an integer N (the top N layers, e.g. 40), a fraction with a "
                    "decimal point (e.g. 0.3 = the top 30% of layers, 1.0 = all), or a layer "
                    "name (that layer and all above it, e.g. block_13_expand). BatchNormalization "
                    "layers stay frozen.", module_name=PHASE2)

# Knowledge distillation.
flags.DEFINE_string("distill_from", None, "Teacher for knowledge distillation: a tlkeras run "
                    "folder, its export/ folder or one export version. The student (--backbone) "
                    "trains through both phases on the teacher's softened probabilities mixed "
                    "with the true labels; the teacher's outputs are computed once, in "
                    "inference mode, and cached with the data. Classification only; the "
                    "classes must equal the teacher's.", module_name=DISTILL)
flags.DEFINE_float("distill_temperature", 4.0, "Softmax temperature T for the teacher's and the "
                   "student's probabilities in the distillation term (> 0; higher is softer).",
                   module_name=DISTILL)
flags.DEFINE_float("distill_alpha", 0.1, "Weight of the true-label cross-entropy; the "
                   "distillation term gets 1 - alpha (in [0, 1]).", module_name=DISTILL)

# Export.
flags.DEFINE_integer("top_k", 5, "The SavedModel's serving signatures also return the top K "
                     "classes and scores.", module_name=EXPORT)
flags.DEFINE_list("export_tflite", [], "Also write TFLite models to <run dir>/tflite/, verified "
                  "against the Keras model on test images: any of float32, float16 (float16 "
                  "weights), dynamic_int8 (dynamic-range int8 weights), comma-separated.",
                  module_name=EXPORT)

# Outputs and runtime.
flags.DEFINE_string("output_dir", "runs", "Parent folder of all runs.", module_name=RUNTIME)
flags.DEFINE_string("run_name", None, "Run folder under --output_dir (default: "
                    "<dataset>-<backbone>-<YYYYmmdd-HHMMSS>). If it holds an unfinished run of "
                    "the same flags, that run resumes after its last finished epoch; any other "
                    "existing run is never overwritten.", module_name=RUNTIME)
flags.DEFINE_bool("fresh_run", False, "If the run folder exists, start a new run beside it "
                  "(<run_name>-2, -3, ...) instead of stopping. Existing runs are never "
                  "overwritten either way.", module_name=RUNTIME)
flags.DEFINE_integer("seed", 42, "Random seed for shuffling, splits, augmentation and init.",
                     module_name=RUNTIME)
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
                  "tf.distribute strategy: default (one device), mirrored (all local GPUs or "
                  "--devices), multi_worker (MultiWorkerMirroredStrategy from TF_CONFIG; "
                  "refused until Keras 3 supports it, keras-team/keras#20585), tpu "
                  "(TPUStrategy on --tpu). --batch_size is per replica; the global batch is "
                  "--batch_size x replicas. Learning rates are not scaled for you: with N times "
                  "the global batch, the usual linear rule is N times --learning_rate and "
                  "--fine_tune_learning_rate.", module_name=RUNTIME)
flags.DEFINE_list("devices", [], "Devices for --strategy=mirrored, e.g. /gpu:0,/gpu:1 "
                  "(default: all local GPUs, else the CPU).", module_name=RUNTIME)
flags.DEFINE_string("tpu", None, "TPU address or name for --strategy=tpu.", module_name=RUNTIME)
flags.DEFINE_bool("mixed_precision", False, "Compute in mixed precision: mixed_float16 on GPU, "
                  "mixed_bfloat16 on CPU/TPU; variables and the softmax output stay float32.",
                  module_name=RUNTIME)
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"], "XLA compilation of the "
                  "train and evaluation steps (Keras' compile(jit_compile=...)).",
                  module_name=RUNTIME)

@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one run needs; mirrors the flags above (see their help for meanings)."""

    dataset: str | None = None
    data_dir: str | None = None
    image_dir: str | None = None
    train_split: str = "train"
    validation_split: str = ""
    test_split: str = "test"
    validation_fraction: float = 0.1
    batch_size: int = 32
    shuffle_buffer: int = 10000
    cache_memory_mb: int = 2048
    deterministic: bool = True
    augment_flip: bool = False
    augment_translate: float = 0.0
    backbone: str = "MobileNetV2"
    weights: str = "imagenet"
    image_size: int = 0
    dropout: float = 0.2
    task: str = "classification"
    regression_loss: str = "mse"
    epochs: int = 5
    feature_cache: str = "auto"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    fine_tune_epochs: int = 5
    fine_tune_optimizer: str = "adam"
    fine_tune_learning_rate: float = 1e-5
    unfreeze: str = "0.3"
    distill_from: str | None = None
    distill_temperature: float = 4.0
    distill_alpha: float = 0.1
    top_k: int = 5
    export_tflite: tuple[str, ...] = ()
    output_dir: str = "runs"
    run_name: str | None = None
    fresh_run: bool = False
    seed: int = 42
    strategy: str = "default"
    devices: tuple[str, ...] = ()
    tpu: str | None = None
    mixed_precision: bool = False
    jit_compile: str = "auto"

    @property
    def data_source_name(self) -> str:
        """Short name of the data for run names and logs."""
        if self.dataset:
            return self.dataset.split("/")[0].split(":")[0]
        return self.image_dir.rstrip("/").split("/")[-1] if self.image_dir else "data"


def config_from_flags(flag_values=flags.FLAGS) -> Config:
    """Builds a validated `Config` from parsed absl flags."""
    names = [field.name for field in dataclasses.fields(Config)]
    values = {name: flag_values[name].value for name in names}
    config = Config(**{**values, "export_tflite": tuple(values["export_tflite"]),
                       "devices": tuple(values["devices"])})
    validate(config)
    return config


def validate(config: Config) -> None:
    """Checks what can be checked without data or a model; raises `ConfigError`."""
    if bool(config.dataset) == bool(config.image_dir):
        raise ConfigError("dataset", "give exactly one data source",
                          "Pass --dataset=<TFDS name> (e.g. cifar10) or --image_dir=<folder>, "
                          "not both and not neither.")
    _require(config.batch_size > 0, "batch_size", f"must be positive, got {config.batch_size}")
    _require(0 < config.validation_fraction < 1, "validation_fraction",
             f"must be in (0, 1), got {config.validation_fraction}")
    _require(0 <= config.dropout < 1, "dropout", f"must be in [0, 1), got {config.dropout}")
    _require(0 <= config.augment_translate < 1, "augment_translate",
             f"must be in [0, 1), got {config.augment_translate}")
    _require(config.cache_memory_mb >= 0, "cache_memory_mb",
             f"must be >= 0, got {config.cache_memory_mb}")
    _require(config.image_size >= 0, "image_size", f"must be >= 0, got {config.image_size}")
    _require(config.epochs >= 1, "epochs", f"phase 1 needs at least 1 epoch, got {config.epochs}")
    _require(config.fine_tune_epochs >= 0, "fine_tune_epochs",
             f"must be >= 0 (0 skips phase 2), got {config.fine_tune_epochs}")
    _require(config.learning_rate > 0, "learning_rate", "must be positive")
    _require(config.fine_tune_learning_rate > 0, "fine_tune_learning_rate", "must be positive")
    _validate_unfreeze(config)
    _validate_distillation(config)
    _require(config.top_k >= 1, "top_k", f"must be >= 1, got {config.top_k}")
    unknown = set(config.export_tflite) - set(TFLITE_VARIANTS)
    _require(not unknown, "export_tflite", f"unknown variant(s) {sorted(unknown)}; choose from "
             f"{', '.join(TFLITE_VARIANTS)}")


def _validate_unfreeze(config: Config) -> None:
    count, fraction, _ = parse_unfreeze(config.unfreeze)
    if count is not None:
        _require(count >= 1, "unfreeze", f"must be >= 1 layers, got {count} (use "
                 "--fine_tune_epochs=0 to skip phase 2)")
    if fraction is not None:
        _require(0 < fraction <= 1, "unfreeze", f"a fraction must be in (0, 1], got {fraction}")


def _validate_distillation(config: Config) -> None:
    _require(config.distill_temperature > 0, "distill_temperature",
             f"must be positive, got {config.distill_temperature}")
    _require(0 <= config.distill_alpha <= 1, "distill_alpha",
             f"must be in [0, 1], got {config.distill_alpha}")
    if config.distill_from and config.task != "classification":
        raise ConfigError("distill_from", "distillation trains a classifier on a classifier's "
                          "probabilities", "Drop --distill_from, or use --task=classification.")


def parse_unfreeze(value: str) -> tuple[int | None, float | None, str | None]:
    """`--unfreeze` as (layer count, fraction, layer name); exactly one is not None."""
    value = value.strip()
    if re.fullmatch(r"[+-]?\d+", value):
        return int(value), None, None
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)", value):
        return None, float(value), None
    _require(bool(value), "unfreeze", "is empty")
    return None, None, value


def _require(condition: bool, flag: str, problem: str) -> None:
    if not condition:
        raise ConfigError(flag, problem, f"Fix --{flag} on the command line or in the flagfile.")
