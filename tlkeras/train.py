"""Two-phase transfer learning: feature extraction, then fine-tuning, then evaluation and export.

`train_and_evaluate` is the one coordinating function (`run.py` only parses flags and calls it).
Everything a user can get wrong is checked before the run folder is created: flags, data source,
backbone and weights, image size, the phase-2 unfreeze choice, optimizers, output folder.
"""

import dataclasses
import logging
import math
import os
import shutil
import sys

import keras
import tensorflow as tf

from tlkeras import (
    backbones,
    data,
    distill,
    distribute,
    export,
    feature_cache,
    finetune,
    hparams,
    regression_report,
    report,
    resume,
    rundir,
    tasks,
    tflite,
)
from tlkeras.config import Config
from tlkeras.errors import ConfigError, TrainingStopped
from tlkeras.model import build_augmentation, build_classifier, build_regressor

BANNER = "=" * 78  # Frames the phase banners in the log.
WARMUP_IMAGES = 4  # Real images in TF Serving's warm-up requests.
TFLITE_CHECK_IMAGES = 200  # Held-out images on which TFLite is compared with Keras.
log = logging.getLogger(__name__)


@dataclasses.dataclass
class Phase:
    """One `fit` call: its name, epoch range on the shared axis, and optimizer."""

    name: str
    first_epoch: int
    epochs: int
    optimizer: keras.optimizers.Optimizer
    jit_compile: str | bool = "auto"
    task: tasks.Task = tasks.Task()


def make_optimizer(flag: str, name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A keras.optimizers optimizer by name, e.g. `adam` or `rmsprop`."""
    try:
        return keras.optimizers.get({"class_name": name,
                                     "config": {"learning_rate": learning_rate}})
    except (ValueError, TypeError) as error:
        raise ConfigError(flag, f"unknown optimizer {name!r} ({error})",
                          "Pass a keras.optimizers name such as adam, sgd, rmsprop or adamw.") \
            from None


@dataclasses.dataclass
class PreparedRun:
    """Everything checked and built before the run folder exists."""

    run_dir: str
    backbone_name: str
    image_size: int
    phases: tuple[Phase, Phase]
    backbone: keras.Model
    plan: finetune.UnfreezePlan | None
    splits: data.DataSplits
    model: keras.Model
    strategy: tf.distribute.Strategy
    resuming: bool  # The run folder holds this command's unfinished run, to be continued.
    task: tasks.Task
    teacher: distill.Teacher | None  # With --distill_from.


def prepare(config: Config, strategy: tf.distribute.Strategy) -> PreparedRun:
    """Checks every user input and builds data and model; writes nothing. Raises ConfigError."""
    run_dir = rundir.run_dir_path(config)
    resuming = rundir.check_available(config, run_dir)
    spec = backbones.get_spec(config.backbone)
    image_size = config.image_size or spec.default_size
    jit_compile = {"auto": "auto", "true": True, "false": False}[config.jit_compile]
    keras.mixed_precision.set_global_policy(precision_policy(config.mixed_precision))
    with strategy.scope():  # Variables are created per replica.
        optimizers = (make_optimizer("optimizer", config.optimizer, config.learning_rate),
                      make_optimizer("fine_tune_optimizer", config.fine_tune_optimizer,
                                     config.fine_tune_learning_rate))
        backbone = backbones.build_backbone(spec, image_size, config.weights)
        plan = finetune.plan_unfreeze(backbone, config.unfreeze) if config.fine_tune_epochs \
            else None
        splits = data.load(config, image_size,  # Last: a TFDS download is the largest cost.
                           batch_size=config.batch_size * strategy.num_replicas_in_sync)
        task = make_task(config, splits)
        teacher = distill.load_teacher(config.distill_from, splits.class_names) \
            if config.distill_from else None
        # Seed again: preparing a TFDS dataset draws random numbers, and the head's initial
        # weights must not depend on whether this run had to prepare it.
        keras.utils.set_random_seed(config.seed)
        model = build_model(config, backbone, spec.name, splits)
    phases = (Phase("phase1", 0, config.epochs, optimizers[0], jit_compile, task),
              Phase("phase2", config.epochs, config.fine_tune_epochs, optimizers[1], jit_compile,
                    task))
    return PreparedRun(run_dir, spec.name, image_size, phases, backbone, plan, splits, model,
                       strategy, resuming, task, teacher)


def make_task(config: Config, splits: data.DataSplits) -> tasks.Task:
    """The run's objective: classification (distilled or not), or regression on the training
    targets' scale."""
    if splits.targets is not None:
        return tasks.Task(tasks.REGRESSION, config.regression_loss,
                          tuple(float(std) for std in splits.targets.std))
    if config.distill_from:
        return tasks.Task(distill_temperature=config.distill_temperature,
                          distill_alpha=config.distill_alpha)
    return tasks.Task()


def build_model(config: Config, backbone: keras.Model, backbone_name: str,
                splits: data.DataSplits) -> keras.Model:
    """The classifier or, for --task=regression, the regressor on `backbone`."""
    augmentation = build_augmentation(config.augment_flip, config.augment_translate)
    if splits.targets is not None:
        return build_regressor(backbone, backbone_name, splits.targets.mean,
                               splits.targets.std, config.dropout, augmentation)
    return build_classifier(backbone, backbone_name, len(splits.class_names), config.dropout,
                            augmentation)


def train_and_evaluate(config: Config) -> dict:
    """Runs both phases, writes logs, checkpoint, labels, metrics and the SavedModel.

    Returns the metrics dictionary that is also written to `<run dir>/metrics.json`.
    """
    strategy = distribute.make_strategy(config)  # First: TPU set-up must precede other work.
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:  # Same seed, same results (on CPU; see the README for GPUs).
        tf.config.experimental.enable_op_determinism()
    run = prepare(config, strategy)
    log.info("Strategy %s: %d replica(s), global batch %d.", config.strategy,
             strategy.num_replicas_in_sync, run.splits.batch_size)
    rundir.create(config, run.run_dir, resuming=run.resuming)
    rundir.write_labels(run.run_dir, run.splits.output_names)
    distill_cache = os.path.join(run.run_dir, distill.CACHE_DIR)
    if run.teacher:
        shutil.rmtree(distill_cache, ignore_errors=True)  # A killed run's partial cache.
        run.splits = distill.with_teacher_outputs(run.splits, run.teacher, config, run.run_dir)
    metrics_path = os.path.join(run.run_dir, "metrics.json")
    callbacks, backups = _callbacks(run.run_dir, run.model, run.task)
    metrics = _run_summary(config, run)
    if run.resuming:  # Keep what finished phases recorded; note where this run picks up.
        metrics = {**rundir.read_metrics(run.run_dir), **metrics}
        metrics.setdefault("resumed", []).append(_resume_point(backups, run.run_dir))
        rundir.write_json(metrics_path, metrics)

    try:
        _both_phases(config, run, callbacks, backups, metrics, metrics_path)
    except TrainingStopped as stopped:
        checkpoint = os.path.join(run.run_dir, "checkpoints", "best.keras")
        kept = (f" The last good checkpoint is kept: {checkpoint}." if os.path.exists(checkpoint)
                else " No epoch finished well enough to checkpoint.")
        metrics["error"] = str(stopped) + kept
        rundir.write_json(metrics_path, metrics)
        raise TrainingStopped(metrics["error"]) from None

    shutil.rmtree(distill_cache, ignore_errors=True)  # Only training needs the teacher's outputs.
    run.model.save(os.path.join(run.run_dir, "model.keras"))  # The final model, as exported.
    metrics.update(_export(config, run))
    if run.teacher:
        metrics["distillation"] = _compare_with_teacher(config, run, metrics)
    hparams.log_hparams(os.path.join(run.run_dir, "logs"), config,
                        _final_metrics(metrics, run.task))
    rundir.write_json(metrics_path, metrics)  # With "export" in it, the run counts as finished.
    backups.remove()
    _print_summary(metrics, run.run_dir)
    return metrics


def _resume_point(backups: resume.Backups, run_dir: str) -> dict:
    state = backups.latest()
    point = ({"phase": state["record"]["name"], "epochs_done": state["record"]["epochs_done"]}
             if state else {"phase": None, "epochs_done": 0})
    log.info("Resuming the unfinished run in %s %s.", run_dir,
             f"after {point['phase']} epoch {point['epochs_done']}" if state else
             "from the start (it stopped before its first epoch ended)")
    return point


def _both_phases(config: Config, run: PreparedRun, callbacks: list, backups: resume.Backups,
                 metrics: dict, metrics_path: str) -> None:
    """Phase 1, then phase 2 unless skipped; metrics.json is updated after each."""
    phase1, phase2 = run.phases
    finetune.freeze(run.backbone)
    state = backups.latest()
    if state and state["record"]["name"] == phase2.name:
        log.info("Phase 1 finished before the restart; its results are kept in metrics.json.")
    else:
        log.info("%s\nPhase 1 (feature extraction): %s frozen, training the new head; %s.\n%s",
                 BANNER, run.backbone_name, _trainable_summary(run.model), BANNER)
        with run.strategy.scope():
            metrics["phase1"] = _phase1(config, run, phase1, callbacks, backups)
        rundir.write_json(metrics_path, metrics)
    if run.plan is None:
        return
    trainable_before = _count(run.model.trainable_weights)
    finetune.unfreeze_top(run.backbone, run.plan)
    log.info("%s\nPhase 2 (fine-tuning): unfroze the top %d of %d %s layers (from %r up), "
             "BatchNormalization kept frozen: %s more parameters trainable, %s; learning rate "
             "%g.\n%s", BANNER, run.plan.count, run.plan.total_layers, run.backbone_name,
             run.plan.first_layer, f"{_count(run.model.trainable_weights) - trainable_before:,}",
             _trainable_summary(run.model), config.fine_tune_learning_rate, BANNER)
    with run.strategy.scope():
        metrics["phase2"] = fit(run.model, run.splits.train, run.splits.validation, phase2,
                                callbacks, backups)
    metrics["phase2"].update(evaluate(run.model, run.splits.test, phase2),
                             **_report(config, run, phase2), unfrozen_layers=run.plan.count,
                             first_unfrozen_layer=run.plan.first_layer)
    rundir.write_json(metrics_path, metrics)


def _export(config: Config, run: PreparedRun) -> dict:
    """The SavedModel (warm-up requests from real held-out images) and any TFLite variants."""
    held_out = run.splits.test if run.splits.test is not None else run.splits.validation
    pixels = next(iter(held_out.unbatch().batch(TFLITE_CHECK_IMAGES)))[0].numpy()
    exported = {"export": export.export_saved_model(
        run.model, os.path.join(run.run_dir, "export"), run.splits.output_names,
        warmup_pixels=pixels[:WARMUP_IMAGES], top_k=config.top_k,
        regression=run.task.regression)}
    if config.export_tflite:
        exported["tflite"] = tflite.export_and_verify(
            run.model, os.path.join(run.run_dir, "tflite"), list(config.export_tflite),
            run.splits.output_names, pixels, regression=run.task.regression)
        for variant, check in exported["tflite"].items():
            log.info("TFLite %s: %s, %.1f MB; against Keras on %d images: top-1 agreement %s, "
                     "max abs diff %.2g.", variant, check["path"], check["bytes"] / 1e6,
                     check["images"], check.get("top1_agreement", "n/a"), check["max_abs_diff"])
    return exported


def _phase1(config: Config, run: PreparedRun, phase: Phase, callbacks: list,
            backups: resume.Backups) -> dict:
    """Phase 1 on cached features when it is safe, else on images as in the keras.io recipe."""
    use_cache, why = feature_cache.decide(config)
    log.info("Phase 1 feature cache: %s.", why)
    trainee, train, validation = run.model, run.splits.train, run.splits.validation
    if use_cache:
        cache_dir = os.path.join(run.run_dir, "feature_cache")
        shutil.rmtree(cache_dir, ignore_errors=True)  # A killed run's partial cache and lock.
        trainee = feature_cache.head_model(run.model)
        train, validation = (
            feature_cache.feature_dataset(run.model, images, run.splits.sizes[name], config,
                                          run.splits.batch_size, cache_dir, name,
                                          training=name == "train")
            for name, images in (("train", train.in_order()), ("validation", validation)))
    try:
        result = fit(trainee, train, validation, phase, callbacks, backups)
    finally:
        if use_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)  # Only phase 1 needs the features.
    return {**result, "feature_cache": why, **evaluate(run.model, run.splits.test, phase),
            **_report(config, run, phase)}


def fit(model: keras.Model, train: data.TrainingData, validation, phase: Phase,
        callbacks: list, backups: resume.Backups | None = None) -> dict:
    """Compiles for the phase (needed after any change of `trainable`) and fits.

    With `backups`, a phase that a killed run had started continues after its last backed-up
    epoch, and every finished epoch is backed up.
    """
    model.compile(optimizer=phase.optimizer, **phase.task.training_compile_args(),
                  jit_compile=phase.jit_compile)
    record = (backups and backups.restore(model, phase.name)) or \
        resume.PhaseRecord(phase.name, phase.first_epoch)
    last_epoch = phase.first_epoch + phase.epochs
    if record.epochs_done < last_epoch:
        model.fit(train.epochs(record.epochs_done, last_epoch),
                  steps_per_epoch=train.steps_per_epoch, validation_data=validation,
                  initial_epoch=record.epochs_done, epochs=last_epoch,
                  shuffle=False,  # TrainingData shuffles each epoch; Keras cannot.
                  callbacks=[*callbacks, record, *([backups.callback(record)] if backups else [])],
                  verbose=1 if sys.stdout.isatty() else 2)
    losses = record.history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):  # TerminateOnNaN stopped the fit.
        epoch = phase.first_epoch + len(losses)
        raise TrainingStopped(
            f"{phase.name} stopped in epoch {epoch}: the training loss became {losses[-1]} "
            f"(TerminateOnNaN). The learning rate is probably too high for this data: lower "
            f"--{'learning_rate' if phase.name == 'phase1' else 'fine_tune_learning_rate'} "
            f"and run again.")
    return {"epochs": phase.epochs, "seconds": round(sum(record.epoch_seconds), 2),
            "epoch_seconds": record.epoch_seconds, "history": record.history}


def evaluate(model: keras.Model, test, phase: Phase) -> dict:
    """{"test": {"loss", metrics...}} of the full model, or {} without a test split.

    Compiles for the test labels if needed: after phase 1 on features only the head was
    compiled, and a distilling model was compiled for labels that carry the teacher's outputs.
    """
    if test is None:
        return {}
    if not model.compiled or phase.task.distilling:
        model.compile(**phase.task.evaluation_compile_args(), jit_compile=phase.jit_compile)
    result = {key: float(value) for key, value in
              model.evaluate(test, return_dict=True, verbose=0).items()}
    log.info("%s test: %s", phase.name,
             ", ".join(f"{key} {value:.4f}" for key, value in result.items()))
    return {"test": result}


def precision_policy(mixed: bool) -> str:
    """mixed_float16 where there is a GPU, mixed_bfloat16 on CPU (and TPU), else float32."""
    if not mixed:
        return "float32"
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"


def _callbacks(run_dir: str, model: keras.Model, task: tasks.Task) -> tuple[list, resume.Backups]:
    """Shared by both phases: stop on a non-finite loss, one TensorBoard log on one epoch axis,
    one best checkpoint (a diverged epoch never improves on it, so it stays the last good one),
    and the per-epoch backups a killed run resumes from (they keep the checkpoint's best score).
    """
    checkpoint = feature_cache.FullModelCheckpoint(
        model, os.path.join(run_dir, "checkpoints", "best.keras"), monitor=task.monitor,
        mode=task.monitor_mode, save_best_only=True)
    return ([keras.callbacks.TerminateOnNaN(),
             keras.callbacks.TensorBoard(log_dir=os.path.join(run_dir, "logs")), checkpoint],
            resume.Backups(os.path.join(run_dir, "resume"), checkpoint))


def _report(config: Config, run: PreparedRun, phase: Phase) -> dict:
    """The test split's evaluation report in `<run dir>/report/<phase>/` and TensorBoard."""
    if run.splits.test is None:
        return {}
    out_dir = os.path.join(run.run_dir, "report", phase.name)
    where = {"out_dir": out_dir, "log_dir": os.path.join(run.run_dir, "logs", "report"),
             "step": phase.first_epoch + phase.epochs - 1, "title": f"{phase.name}, test split"}
    if run.task.regression:
        result = regression_report.write_report(
            *regression_report.collect(_predict_function(run.model), run.splits.test),
            run.splits.targets.names, run.splits.targets.mean, **where)
        return {"report": {"path": out_dir, "r2": result["r2"],
                           "baseline_mae": result["baseline_mae"]}}
    predictions = report.collect_predictions(_predict_function(run.model), run.splits.test)
    result = report.write_report(predictions, run.splits.class_names, config.top_k, **where)
    top_k = next(key for key in result if key.startswith("top_"))
    return {"report": {"path": out_dir, "macro_f1": result["macro_avg"]["f1"],
                       top_k: result[top_k]}}


def _compare_with_teacher(config: Config, run: PreparedRun, metrics: dict) -> dict:
    """Teacher vs the exported student on held-out images (see distill.compare)."""
    held_out = run.splits.test if run.splits.test is not None else run.splits.validation
    pixels = next(iter(held_out.unbatch().batch(distill.SPEED_BATCH)))[0].numpy()
    student = tf.saved_model.load(metrics["export"]).signatures[export.PIXELS_SIGNATURE]
    final = metrics.get("phase2", metrics["phase1"])
    comparison = distill.compare(run.teacher, student, pixels, run.splits.test,
                                 final.get("test", {}).get("accuracy"))
    comparison["student"].update(backbone=run.backbone_name, parameters=run.model.count_params())
    return {"temperature": config.distill_temperature, "alpha": config.distill_alpha,
            **comparison}


def _predict_function(model: keras.Model):
    """A compiled inference call on one batch, on one device.

    Not `predict_on_batch`: under MirroredStrategy (Keras 3.15) it gives every replica the whole
    batch and concatenates their outputs, returning each prediction once per replica.
    """
    return tf.function(lambda images: model(images, training=False))


def _final_metrics(metrics: dict, task: tasks.Task) -> dict[str, float]:
    """The HParams dashboard's metrics: the last phase's test results, best validation score."""
    final = metrics.get("phase2", metrics["phase1"])
    values = {f"test_{key}": value for key, value in final.get("test", {}).items()}
    values.update({key: value for key, value in final.get("report", {}).items()
                   if key != "path"})
    validation = [value for phase in ("phase1", "phase2")
                  for value in metrics.get(phase, {}).get("history", {}).get(task.monitor, [])]
    if validation:
        values[f"best_{task.monitor}"] = (max if task.monitor_mode == "max" else min)(validation)
    return values


def _count(weights) -> int:
    return sum(int(keras.ops.size(weight)) for weight in weights)


def _trainable_summary(model: keras.Model) -> str:
    return f"{_count(model.trainable_weights):,} of {_count(model.weights):,} parameters trainable"


def _run_summary(config: Config, run: PreparedRun) -> dict:
    return {"run_dir": run.run_dir, "config": dataclasses.asdict(config),
            "backbone": run.backbone_name, "image_size": run.image_size, "task": run.task.kind,
            **_outputs_summary(run.splits), "images_cached": run.splits.images_cached,
            "skipped_files": run.splits.skipped_files}


def _outputs_summary(splits: data.DataSplits) -> dict:
    if splits.targets is None:
        return {"num_classes": len(splits.class_names), "class_names": splits.class_names}
    return {"target_names": splits.targets.names,
            "target_mean": splits.targets.mean.tolist(), "target_std": splits.targets.std.tolist()}


def _print_summary(metrics: dict, run_dir: str) -> None:
    for phase in ("phase1", "phase2"):
        test = metrics.get(phase, {}).get("test", {})
        main = "accuracy" if "accuracy" in test else "mae"
        if test:
            others = ", ".join(f"{key} {value:.4f}" for key, value in test.items() if key != main)
            print(f"{phase} test {main}: {test[main]:.4f} ({others})")
    print(f"Metrics: {os.path.join(run_dir, 'metrics.json')}")
    for phase in ("phase1", "phase2"):
        if "report" in metrics.get(phase, {}):
            figures = ("predicted_vs_true.png" if metrics["task"] == tasks.REGRESSION
                       else "confusion_matrix.png, misclassified.png")
            print(f"{phase} report: {metrics[phase]['report']['path']} (report.json, {figures})")
    print(f"TensorBoard: tensorboard --logdir {os.path.join(run_dir, 'logs')}")
    for variant, check in metrics.get("tflite", {}).items():
        agreement = (f"top-1 agreement {check['top1_agreement']:.3f}" if "top1_agreement" in check
                     else f"max abs diff {check['max_abs_diff']:.2g}")
        print(f"TFLite {variant}: {check['path']} ({agreement})")
    if "distillation" in metrics:
        for role in ("teacher", "student"):
            model = metrics["distillation"][role]
            accuracy = f"test accuracy {model['test_accuracy']:.4f}, " \
                if "test_accuracy" in model else ""
            print(f"Distillation {role}: {accuracy}{model['parameters']:,} parameters, "
                  f"{model['images_per_second']:.0f} images/s at {model['image_size']} px")
    print(f"SavedModel: {metrics['export']}")
