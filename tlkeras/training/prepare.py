"""Everything a run needs, checked and built before its run folder exists.

Settings, data source, backbone and weights, image size, the phase-2 unfreeze choice, optimizers,
the output folder and optional packages are all checked here, so a mistake costs seconds and
leaves nothing behind (`ConfigError`, exit 2 on the command line).
"""

import dataclasses

import keras
import tensorflow as tf

from tlkeras import data, tasks
from tlkeras.artifacts import tflite
from tlkeras.config import Config
from tlkeras.errors import ConfigError
from tlkeras.model import backbones, finetune, network
from tlkeras.tasks.base import Task
from tlkeras.training import phases, run_dir, schedules


@dataclasses.dataclass
class PreparedRun:
    """Everything checked and built before the run folder exists."""

    config: Config
    run_dir: str
    backbone_name: str
    image_size: int
    phases: tuple[phases.Phase, phases.Phase]
    backbone: keras.Model
    plan: finetune.UnfreezePlan | None
    splits: data.DataSplits
    model: keras.Model
    strategy: tf.distribute.Strategy
    resuming: bool  # The run folder holds this command's unfinished run, to be continued.
    task: Task


def prepare(config: Config, strategy: tf.distribute.Strategy) -> PreparedRun:
    """Checks every user input and builds data and model; writes nothing. Raises ConfigError."""
    folder = run_dir.run_dir_path(config)
    resuming = run_dir.check_available(config, folder)
    spec = backbones.get_spec(config.model.backbone)
    image_size = config.model.image_size or spec.default_size
    _check_image_size(image_size, spec)
    if config.export.export_tflite:
        tflite.require_interpreter()
    keras.mixed_precision.set_global_policy(precision_policy(config.runtime.mixed_precision))
    with strategy.scope():  # Variables are created per replica.
        _optimizers(config, steps_per_epoch=1)  # Names checked before the data loads.
        backbone = backbones.build_backbone(spec, image_size, config.model.weights)
        plan = finetune.plan_unfreeze(backbone, config.phase2.unfreeze) \
            if config.phase2.fine_tune_epochs else None
        splits = data.load(config.data, tasks.run_task_class(config).labels,  # Last: a TFDS
                           config.runtime.seed, image_size,  # download is the largest cost.
                           batch_size=config.data.batch_size * strategy.num_replicas_in_sync)
        task = tasks.make_task(config, splits)
        optimizers = _optimizers(config, splits.train.steps_per_epoch)
        # Seed again: preparing a TFDS dataset draws random numbers, and the head's initial
        # weights must not depend on whether this run had to prepare it.
        keras.utils.set_random_seed(config.runtime.seed)
        model = task.build_model(backbone, spec.name, config.model.dropout,
                                 network.build_augmentation(config.data.augment_flip,
                                                            config.data.augment_translate))
    return PreparedRun(config, folder, spec.name, image_size,
                       _phases(config, optimizers, task), backbone, plan, splits, model,
                       strategy, resuming, task)


MAX_SIZE_FACTOR = 4  # --image_size up to 4x the backbone's default (16x its pixels and memory).


def _check_image_size(image_size: int, spec: backbones.BackboneSpec) -> None:
    """Above a few times its default size a backbone sees nothing new, and memory grows with
    the square: --image_size=10000 ran out of memory after its run folder was written."""
    largest = MAX_SIZE_FACTOR * spec.default_size
    if image_size > largest:
        raise ConfigError("image_size", f"{image_size} px is more than {MAX_SIZE_FACTOR}x "
                          f"{spec.name}'s default input size ({spec.default_size} px); each "
                          f"image would cost {image_size**2 * 12 / 2**20:,.0f} MB as "
                          "float32 before the backbone's activations",
                          f"Pass --image_size of at most {largest} (0 uses the default, "
                          f"{spec.default_size}).")


def _optimizers(config: Config, steps_per_epoch: int) -> tuple:
    """Each phase's optimizer, with its schedule (`--lr_schedule`, `--warmup_epochs`) over
    that phase's steps and `--momentum`."""
    training = config.training
    phases.check_momentum(training.momentum, {
        "optimizer": config.phase1.optimizer,
        "fine_tune_optimizer": config.phase2.fine_tune_optimizer})

    def optimizer(flag: str, name: str, rate: float, epochs: int):
        learning_rate = schedules.phase_learning_rate(rate, training.lr_schedule,
                                                      training.warmup_epochs, epochs,
                                                      steps_per_epoch)
        return phases.make_optimizer(flag, name, learning_rate, training.momentum)

    return (optimizer("optimizer", config.phase1.optimizer, config.phase1.learning_rate,
                      config.phase1.epochs),
            optimizer("fine_tune_optimizer", config.phase2.fine_tune_optimizer,
                      config.phase2.fine_tune_learning_rate, config.phase2.fine_tune_epochs))


def _phases(config: Config, optimizers: tuple, task: Task) -> tuple:
    jit_compile = {"auto": "auto", "true": True, "false": False}[config.runtime.jit_compile]
    epochs = config.phase1.epochs
    return (phases.Phase("phase1", 0, epochs, optimizers[0], task, jit_compile),
            phases.Phase("phase2", epochs, config.phase2.fine_tune_epochs, optimizers[1], task,
                         jit_compile, learning_rate_flag="fine_tune_learning_rate"))


def precision_policy(mixed: bool) -> str:
    """mixed_float16 where there is a GPU, mixed_bfloat16 on CPU (and TPU), else float32."""
    if not mixed:
        return "float32"
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
