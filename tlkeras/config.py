"""Run configuration: eight groups of settings, each with its default and help written once.

`Config` nests one frozen dataclass per group (data, model, phase 1, phase 2, training,
distillation, export, runtime). Every field carries its help text in its metadata, and the
command line (`tlkeras.cli.flags`) turns fields into absl flags of the same name, so a default or
a help text exists in one place only. Field names are unique across groups: a field is named by
itself in errors and flags alike (`batch_size` here, `--batch_size` on the command line).

Validation here needs no data, model or TensorFlow; it raises `ConfigError` naming the field.
"""

import dataclasses
import math
import re
from typing import Any, ClassVar

from tlkeras.errors import ConfigError

TFLITE_VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
TASKS = ("classification", "regression")  # tlkeras.tasks.REGISTRY implements each.


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None):  # noqa: A002
    """A config field with its help (and, for a string, its allowed values) in one place."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass(frozen=True)
class DataConfig:
    TITLE: ClassVar[str] = "data"

    dataset: str | None = setting(None, "TFDS image-classification dataset name, e.g. `cifar10`. "
                                  "Give exactly one of --dataset or --image_dir.")
    data_dir: str | None = setting(None, "TFDS data directory (default: TFDS' own, "
                                   "~/tensorflow_datasets). Only used with --dataset.")
    image_dir: str | None = setting(None, "Folder of images: <image_dir>/<split>/<class>/<image> "
                                    "for the splits named by --train_split, --validation_split "
                                    "and --test_split.")
    train_split: str = setting("train", "Training split (TFDS split, or subfolder of "
                               "--image_dir).")
    validation_split: str = setting("", "Validation split. Empty: carve --validation_fraction "
                                    "out of the training split (an image folder without this "
                                    "subfolder is carved too).")
    test_split: str = setting("test", "Test split, evaluated after each phase. Empty: no test "
                              "evaluation.")
    validation_fraction: float = setting(0.1, "Fraction of the training split held out for "
                                         "validation when there is no validation split.")
    test_fraction: float = setting(0.1, "Fraction of each class held out for the test when "
                                   "--image_dir is one folder of class folders (no "
                                   "--train_split subfolder); an empty --test_split holds out "
                                   "none.")
    batch_size: int = setting(32, "Batch size per replica for both phases (one replica unless "
                              "--strategy distributes).")
    shuffle_buffer: int = setting(10000, "Shuffle buffer size (examples) for training.")
    cache_memory_mb: int = setting(2048, "Keep decoded, resized images in memory (tf.data "
                                   "cache) when all splits together fit in this many MB; 0 turns "
                                   "it off.")
    feature_store: str = setting("", "Folder that keeps the activations of the frozen backbone "
                                 "(phase 1's features, phase 2's boundary) across runs, keyed "
                                 "by everything they depend on (backbone, weights file, image "
                                 "size, boundary, each split's files with sizes and times, or "
                                 "the TFDS name, version and split). A rerun on the same data "
                                 "and backbone, e.g. with another learning rate, skips those "
                                 "backbone passes. Empty: off (nothing kept after the run).")
    deterministic: bool = setting(True, "Reproducible runs: tf.data keeps its element order and "
                                  "TensorFlow ops run deterministically "
                                  "(tf.config.experimental.enable_op_determinism), so the same "
                                  "--seed gives the same metrics on CPU. False is faster and not "
                                  "reproducible.")
    max_image_megapixels: float = setting(
        64.0, "Largest image decoded, in millions of pixels (width x height x frames; a GIF's "
        "every frame counts): a few hundred KB of PNG can claim 20000x20000 pixels, 1.6 GB "
        "once decoded. Training skips and lists a larger file; predict and the SavedModel's "
        "serving_default fail on it with InvalidArgument. 64 covers a 61 MP camera's photos.")
    augment_flip: bool = setting(False, "Random horizontal flips while training (Keras layer).")
    augment_translate: float = setting(0.0, "Random translation while training, as a fraction of "
                                       "the image size (Keras layer); 0 turns it off.")

    @property
    def source_name(self) -> str:
        """Short name of the data for run names and logs."""
        if self.dataset:
            return self.dataset.split("/")[0].split(":")[0]
        return self.image_dir.rstrip("/").split("/")[-1] if self.image_dir else "data"

    @property
    def augmented(self) -> bool:
        return self.augment_flip or self.augment_translate > 0

    def check_one_source(self) -> None:
        """Exactly one of `dataset` and `image_dir`: training and `tlkeras evaluate` alike."""
        if bool(self.dataset) == bool(self.image_dir):
            raise ConfigError("dataset", "give exactly one data source",
                              "Pass --dataset=<TFDS name> (e.g. cifar10) or --image_dir=<folder>, "
                              "not both and not neither.")

    def validate(self) -> None:
        self.check_one_source()
        _require(self.batch_size > 0, "batch_size", f"must be positive, got {self.batch_size}")
        _require(0 < self.validation_fraction < 1, "validation_fraction",
                 f"must be in (0, 1), got {self.validation_fraction}")
        _require(0 < self.test_fraction < 1, "test_fraction",
                 f"must be in (0, 1), got {self.test_fraction}")
        _require(not self.test_split or self.validation_fraction + self.test_fraction < 1,
                 "test_fraction", f"--validation_fraction={self.validation_fraction} plus "
                 f"--test_fraction={self.test_fraction} must be below 1, to leave training "
                 "images (an empty --test_split holds out no test)")
        _require(0 <= self.augment_translate < 1, "augment_translate",
                 f"must be in [0, 1), got {self.augment_translate}")
        _require(self.cache_memory_mb >= 0, "cache_memory_mb",
                 f"must be >= 0, got {self.cache_memory_mb}")
        _require(self.shuffle_buffer >= 1, "shuffle_buffer", f"must be >= 1 example, got "
                 f"{self.shuffle_buffer} (1 keeps the order)")
        _require(self.max_image_megapixels > 0, "max_image_megapixels",
                 f"must be positive, got {self.max_image_megapixels}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    TITLE: ClassVar[str] = "model"

    backbone: str = setting("MobileNetV2", "keras.applications model name, e.g. MobileNetV2, "
                            "EfficientNetV2B0, ResNet50, ConvNeXtTiny.")
    weights: str = setting("imagenet", "Backbone weights: `imagenet` (Keras download, cached in "
                           "~/.keras/models), `none` (random), or a path to a .weights.h5 file.")
    image_size: int = setting(0, "Square input size in pixels; 0 uses the backbone's default "
                              "(224 for most).")
    dropout: float = setting(0.2, "Dropout rate before the new Dense head.")
    task: str = setting("classification", "What the head predicts. classification: one class "
                        "per image (softmax head, class folders or a TFDS class label). "
                        "regression: one or more real numbers per image (linear head) from "
                        "<image_dir>/<split>.csv (header `path,<target>...`, paths relative to "
                        "<image_dir>/<split>/) or a TFDS dataset with a numeric label; targets "
                        "are normalised with the training split's mean and deviation and the "
                        "model, checkpoint and export predict in the original units.",
                        choices=TASKS)
    regression_loss: str = setting("mse", "--task=regression loss, on targets scaled to unit "
                                   "variance (Huber with delta 1 resists outliers).",
                                   choices=("mse", "huber"))

    def validate(self) -> None:
        _require(0 <= self.dropout < 1, "dropout", f"must be in [0, 1), got {self.dropout}")
        _require(self.image_size >= 0, "image_size", f"must be >= 0, got {self.image_size}")


@dataclasses.dataclass(frozen=True)
class Phase1Config:
    TITLE: ClassVar[str] = "phase 1: feature extraction"

    epochs: int = setting(5, "Phase 1 epochs: frozen backbone, new head trained.")
    feature_cache: str = setting("auto", "Phase 1 runs the frozen backbone once per image and "
                                 "trains the head on cached features (in memory, or on disk in "
                                 "the run folder when over --cache_memory_mb). auto: on unless "
                                 "random augmentation is on; on: also with augmentation (phase "
                                 "1 then trains on unaugmented images); off: the backbone runs "
                                 "every epoch.", choices=("auto", "on", "off"))
    optimizer: str = setting("adam", "Phase 1 optimizer (a keras.optimizers name).")
    learning_rate: float = setting(1e-3, "Phase 1 learning rate.")

    def validate(self) -> None:
        _require(self.epochs >= 1, "epochs", f"phase 1 needs at least 1 epoch, got {self.epochs}")
        _require(self.learning_rate > 0, "learning_rate", "must be positive")


@dataclasses.dataclass(frozen=True)
class Phase2Config:
    TITLE: ClassVar[str] = "phase 2: fine-tuning"

    fine_tune_epochs: int = setting(5, "Phase 2 epochs with the top of the backbone unfrozen; 0 "
                                    "skips phase 2.")
    fine_tune_optimizer: str = setting("adam", "Phase 2 optimizer (a keras.optimizers name).")
    fine_tune_learning_rate: float = setting(1e-5, "Phase 2 learning rate; keep it 10-100x below "
                                             "--learning_rate so the pretrained features are "
                                             "not wrecked.")
    unfreeze: str = setting("0.3", "What phase 2 unfreezes, counted from the top of the "
                            "backbone: an integer N (the top N layers, e.g. 40), a fraction with "
                            "a decimal point (e.g. 0.3 = the top 30% of layers, 1.0 = all), or a "
                            "layer name (that layer and all above it, e.g. block_13_expand). "
                            "BatchNormalization layers stay frozen.")

    def validate(self) -> None:
        _require(self.fine_tune_epochs >= 0, "fine_tune_epochs",
                 f"must be >= 0 (0 skips phase 2), got {self.fine_tune_epochs}")
        _require(self.fine_tune_learning_rate > 0, "fine_tune_learning_rate", "must be positive")
        count, fraction, _ = parse_unfreeze(self.unfreeze)
        if count is not None:
            _require(count >= 1, "unfreeze", f"must be >= 1 layers, got {count} (use "
                     "--fine_tune_epochs=0 to skip phase 2)")
        if fraction is not None:
            _require(0 < fraction <= 1, "unfreeze", f"a fraction must be in (0, 1], got "
                     f"{fraction}")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    TITLE: ClassVar[str] = "training (both phases)"

    lr_schedule: str = setting("constant", "Learning rate within each phase: constant, or cosine "
                               "decay from the phase's rate to 0 over its steps (after any "
                               "warm-up). Per phase: phase 2 starts again from "
                               "--fine_tune_learning_rate.", choices=("constant", "cosine"))
    warmup_epochs: int = setting(0, "Epochs of linear warm-up from 0 to the phase's learning "
                                 "rate at the start of each phase (with either schedule); must "
                                 "be fewer than each phase's epochs.")
    momentum: float = setting(0.0, "Momentum of each phase's optimizer that has one (sgd, "
                              "rmsprop); 0 is Keras' default. Refused when neither phase's "
                              "optimizer has one (adam's momentum is its beta_1).")
    label_smoothing: float = setting(0.0, "Classification: train on labels smoothed towards "
                                     "uniform by this much (Keras' CategoricalCrossentropy "
                                     "label_smoothing); test loss and metrics use the true "
                                     "labels.")
    class_weight: str = setting("none", "Classification: weigh each class's loss. none; auto "
                                "(n_images / (n_classes x class count), from the training "
                                "split: each class weighs as much in total); or a JSON file "
                                "{\"<class>\": weight, ...} naming every class.")

    def validate(self) -> None:
        _require(self.warmup_epochs >= 0, "warmup_epochs",
                 f"must be >= 0, got {self.warmup_epochs}")
        _require(0 <= self.momentum < 1, "momentum", f"must be in [0, 1), got {self.momentum}")
        _require(0 <= self.label_smoothing < 1, "label_smoothing",
                 f"must be in [0, 1), got {self.label_smoothing}")


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    TITLE: ClassVar[str] = "knowledge distillation"

    distill_from: str | None = setting(None, "Teacher for knowledge distillation: a tlkeras run "
                                       "folder, its export/ folder or one export version. The "
                                       "student (--backbone) trains through both phases on the "
                                       "teacher's softened probabilities mixed with the true "
                                       "labels; the teacher's outputs are computed once, in "
                                       "inference mode, and cached with the data. Classification "
                                       "only; the classes must equal the teacher's.")
    distill_temperature: float = setting(4.0, "Softmax temperature T for the teacher's and the "
                                         "student's probabilities in the distillation term (> 0; "
                                         "higher is softer).")
    distill_alpha: float = setting(0.1, "Weight of the true-label cross-entropy; the "
                                   "distillation term gets 1 - alpha (in [0, 1]).")

    def validate(self) -> None:
        _require(self.distill_temperature > 0, "distill_temperature",
                 f"must be positive, got {self.distill_temperature}")
        _require(0 <= self.distill_alpha <= 1, "distill_alpha",
                 f"must be in [0, 1], got {self.distill_alpha}")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    TITLE: ClassVar[str] = "export"

    top_k: int = setting(5, "The SavedModel's serving signatures also return the top K classes "
                         "and scores.")
    export_tflite: tuple[str, ...] = setting((), "Also write TFLite models to <run dir>/tflite/, "
                                             "verified against the Keras model on test images: "
                                             "any of float32, float16 (float16 weights), "
                                             "dynamic_int8 (dynamic-range int8 weights), "
                                             "int8 (full-integer, calibrated on training "
                                             "images; uint8 input and output), "
                                             "comma-separated. Each carries the labels and "
                                             "input normalisation metadata that MediaPipe "
                                             "Tasks, the TFLite Task Library and ML Kit read.")
    export_model: str = setting("best", "Which weights the export, model.keras and the final "
                                "test report use: best (the best checkpoint by the validation "
                                "metric, over both phases) or last (the last epoch's).",
                                choices=("best", "last"))
    min_test_accuracy: float = setting(0.0, "Classification: fail the run (exit status 6, "
                                       "everything still saved) when the final test accuracy "
                                       "is below this; 0 turns the gate off. Needs a "
                                       "--test_split.")

    def validate(self) -> None:
        _require(self.top_k >= 1, "top_k", f"must be >= 1, got {self.top_k}")
        _require(0 <= self.min_test_accuracy <= 1, "min_test_accuracy",
                 f"must be in [0, 1], got {self.min_test_accuracy}")
        unknown = set(self.export_tflite) - set(TFLITE_VARIANTS)
        _require(not unknown, "export_tflite", f"unknown variant(s) {sorted(unknown)}; choose "
                 f"from {', '.join(TFLITE_VARIANTS)}")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    TITLE: ClassVar[str] = "outputs and runtime"

    output_dir: str = setting("runs", "Parent folder of all runs.")
    run_name: str | None = setting(None, "Run folder under --output_dir (default: "
                                   "<dataset>-<backbone>-<YYYYmmdd-HHMMSS>). If it holds an "
                                   "unfinished run of the same flags, that run resumes after its "
                                   "last finished epoch; any other existing run is never "
                                   "overwritten.")
    fresh_run: bool = setting(False, "If the run folder exists, start a new run beside it "
                              "(<run_name>-2, -3, ...) instead of stopping. Existing runs are "
                              "never overwritten either way.")
    seed: int = setting(42, "Random seed for shuffling, splits, augmentation and init.")
    strategy: str = setting("default", "tf.distribute strategy: default (one device), mirrored "
                            "(all local GPUs or --devices), multi_worker "
                            "(MultiWorkerMirroredStrategy: every worker runs the same command "
                            "with its own TF_CONFIG, or under Slurm's srun; needs --run_name), "
                            "tpu (TPUStrategy on --tpu). "
                            "--batch_size is per replica; the global batch is --batch_size x "
                            "replicas. Learning rates are not scaled for you: with N times the "
                            "global batch, the usual linear rule is N times --learning_rate and "
                            "--fine_tune_learning_rate.",
                            choices=("default", "mirrored", "multi_worker", "tpu"))
    devices: tuple[str, ...] = setting((), "Devices for --strategy=mirrored, e.g. /gpu:0,/gpu:1 "
                                       "(default: all local GPUs, else the CPU).")
    tpu: str | None = setting(None, "TPU address or name for --strategy=tpu.")
    worker_timeout: int = setting(300, "--strategy=multi_worker: seconds to wait for every "
                                  "worker to join before stopping with the missing worker's "
                                  "name.")
    mixed_precision: bool = setting(False, "Compute in mixed precision: mixed_float16 on GPU, "
                                    "mixed_bfloat16 on CPU/TPU; variables and the softmax "
                                    "output stay float32.")
    jit_compile: str = setting("auto", "XLA compilation of the train and evaluation steps "
                               "(Keras' compile(jit_compile=...)).",
                               choices=("auto", "true", "false"))

    def validate(self) -> None:
        if self.run_name is not None and not _plain_name(self.run_name):
            raise ConfigError("run_name", f"{self.run_name!r} is not a plain folder name; a path "
                              "would put the run outside --output_dir", "Pass a name without "
                              "'/', '\\', '..' or a leading '.', and choose the parent folder "
                              "with --output_dir.")
        _require(0 <= self.seed < 2**32, "seed", f"must be in [0, 2**32), got {self.seed}")
        if self.strategy == "multi_worker" and (not self.run_name or self.fresh_run):
            raise ConfigError("run_name", "--strategy=multi_worker needs the same run folder "
                              "on every worker, so a --run_name and no --fresh_run",
                              "Pass the same --run_name to every worker.")
        if self.worker_timeout < 1:
            raise ConfigError("worker_timeout", f"{self.worker_timeout} is not a number of "
                              "seconds to wait", "Pass a positive --worker_timeout.")


GROUPS = {"data": DataConfig, "model": ModelConfig, "phase1": Phase1Config,
          "phase2": Phase2Config, "training": TrainingConfig, "distill": DistillConfig,
          "export": ExportConfig, "runtime": RuntimeConfig}


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything one training run needs, by group."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    phase1: Phase1Config = Phase1Config()
    phase2: Phase2Config = Phase2Config()
    training: TrainingConfig = TrainingConfig()
    distill: DistillConfig = DistillConfig()
    export: ExportConfig = ExportConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    @classmethod
    def of(cls, **values) -> "Config":
        """A config from flat field names (`Config.of(image_dir="x", epochs=2)`), defaults else."""
        return cls().replace(**values)

    def replace(self, **values) -> "Config":
        """A copy with flat-named fields changed, each routed to its group."""
        groups = {name: {} for name in GROUPS}
        for field, value in values.items():
            groups[group_of(field)][field] = value
        return dataclasses.replace(self, **{
            name: dataclasses.replace(getattr(self, name), **changes)
            for name, changes in groups.items() if changes})

    def flat(self) -> dict:
        """Every field by its flat name: what run.json records and HParams shows."""
        return {field.name: getattr(getattr(self, group), field.name)
                for group, cls in GROUPS.items() for field in dataclasses.fields(cls)}


def group_of(field: str) -> str:
    """The group holding a flat field name; an unknown name is a programming error."""
    for group, cls in GROUPS.items():
        if field in {f.name for f in dataclasses.fields(cls)}:
            return group
    raise TypeError(f"no config field named {field!r}")


def validate(config: Config) -> None:
    """Checks what can be checked without data or a model; raises `ConfigError`."""
    for field, value in config.flat().items():  # inf learning rates, temperatures, fractions.
        if isinstance(value, float):
            _require(math.isfinite(value), field, f"must be a finite number, got {value}")
    for group in GROUPS:
        getattr(config, group).validate()
    if config.distill.distill_from and config.model.task != "classification":
        raise ConfigError("distill_from", "distillation trains a classifier on a classifier's "
                          "probabilities", "Drop --distill_from, or use --task=classification.")
    _validate_training(config)


def _validate_training(config: Config) -> None:
    """The cross-group checks of the training options: what each one needs to mean something."""
    training, warmup = config.training, config.training.warmup_epochs
    for flag, epochs in (("epochs", config.phase1.epochs),
                         ("fine_tune_epochs", config.phase2.fine_tune_epochs)):
        _require(not epochs or warmup < epochs, "warmup_epochs", f"{warmup} warm-up epochs "
                 f"leave no epoch at the full rate in a phase of --{flag}={epochs}")
    classification_only = {"label_smoothing": training.label_smoothing > 0,
                           "class_weight": training.class_weight != "none",
                           "min_test_accuracy": config.export.min_test_accuracy > 0}
    for field, used in classification_only.items():
        if used and config.model.task != "classification":
            raise ConfigError(field, f"applies to classification, not --task="
                              f"{config.model.task}", f"Drop --{field}.")
        if used and field != "min_test_accuracy" and config.distill.distill_from:
            raise ConfigError(field, "distillation trains on the teacher's probabilities, "
                              "which this option would not change consistently",
                              f"Drop --{field}, or --distill_from.")
    if config.export.min_test_accuracy > 0 and not config.data.test_split:
        raise ConfigError("min_test_accuracy", "the gate needs a test split, and "
                          "--test_split is empty", "Pass --test_split, or drop the gate.")


def parse_unfreeze(value: str) -> tuple[int | None, float | None, str | None]:
    """`unfreeze` as (layer count, fraction, layer name); exactly one is not None."""
    value = value.strip()
    if re.fullmatch(r"[+-]?\d+", value):
        return int(value), None, None
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)", value):
        return None, float(value), None
    _require(bool(value), "unfreeze", "is empty")
    return None, None, value


def _plain_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not re.search(r"[/\\\0]", name)


def _require(condition: bool, field: str, problem: str) -> None:
    if not condition:
        raise ConfigError(field, problem, f"Fix --{field} on the command line or in the "
                          "flagfile.")
