"""Two-phase transfer learning: feature extraction, then fine-tuning, then evaluation and export.

`train_and_evaluate` is the one coordinating function (`tlkeras train` and `run.py` only parse
flags and call it). Everything a user can get wrong is checked first, in
`tlkeras.training.prepare`, before the run folder is created. What differs between tasks is
asked of the task.
"""

import logging
import os
import tempfile

import keras
import tensorflow as tf

from tlkeras.artifacts import saved_model, tflite
from tlkeras.config import Config
from tlkeras.data import decode
from tlkeras.errors import AccuracyGateMissed, RunInterrupted, TrainingStopped
from tlkeras.model import finetune
from tlkeras.reporting import hparams, summary, tensorboard
from tlkeras.tasks.base import Task
from tlkeras.training import (
    checkpoint,
    distribute,
    feature_cache,
    feature_store,
    multi_worker,
    phases,
    resume,
    run_dir,
    run_lock,
)
from tlkeras.training.checkpoint import BestCheckpoint
from tlkeras.training.prepare import PreparedRun, prepare
from tlkeras.training.run_state import RunRecord

BANNER = "=" * 78  # Frames the phase banners in the log.
WARMUP_IMAGES = 4  # Real images in TF Serving's warm-up requests.
HELD_OUT_IMAGES = 200  # Held-out images on which TFLite (and a distilled student) are checked.
log = logging.getLogger(__name__)


def train_and_evaluate(config: Config) -> dict:
    """Runs both phases, writes logs, checkpoint, labels, metrics and the SavedModel.

    Returns the metrics dictionary that is also written to `<run dir>/metrics.json`.
    """
    strategy = distribute.make_strategy(config.runtime)  # First: TPU set-up precedes the rest.
    if multi_worker.is_chief(strategy):
        return _train_and_evaluate(config, strategy)
    # Every other worker runs the same steps (each collective needs all workers), writing its
    # outputs to a temporary folder that is removed after; it resumes from the chief's backups.
    chief_run_dir = run_dir.run_dir_path(config)
    with tempfile.TemporaryDirectory(prefix="tlkeras-worker-") as folder:
        return _train_and_evaluate(config.replace(output_dir=folder), strategy,
                                   os.path.join(chief_run_dir, resume.BACKUP_FOLDER))


def _train_and_evaluate(config: Config, strategy: tf.distribute.Strategy,
                        restore_dir: str | None = None) -> dict:
    keras.utils.set_random_seed(config.runtime.seed)
    if config.data.deterministic:  # Same seed, same results (on CPU; see the README for GPUs).
        tf.config.experimental.enable_op_determinism()
    run = prepare(config, strategy)
    log.info("Strategy %s: %d replica(s), global batch %d.", config.runtime.strategy,
             strategy.num_replicas_in_sync, run.splits.batch_size)
    try:  # A resumed run's folder is locked from `prepare` on.
        data = run_dir.data_identity(run.task.output_names, run.splits.sizes,
                                     run.splits.fingerprints)
        if run.resuming:
            run_dir.check_same_data(config, run.run_dir, data)
        run_dir.create(config, run.run_dir, resuming=run.resuming, data=data)
        return _train_in(run, strategy, restore_dir)
    finally:
        run_lock.release(run.run_dir)


def _train_in(run: PreparedRun, strategy: tf.distribute.Strategy,
              restore_dir: str | None) -> dict:
    """Everything after the run folder is created and locked."""
    config = run.config
    run_dir.write_labels_file(run.run_dir, run.task.output_names)
    run.splits = run.task.prepare_training_data(run.splits, run.run_dir,
                                                config.data.cache_memory_mb)
    callbacks, backups = _callbacks(run.run_dir, run.model, run.task, restore_dir)
    record = _start_record(run, backups)
    try:
        with multi_worker.peers_watched(strategy):
            _both_phases(run, callbacks, backups, record)
        _finish(run, record)
    except TrainingStopped as stopped:
        record.fail(f"{stopped} {backups.checkpoint.kept_note()}")
        raise TrainingStopped(record.error) from None
    except OSError as error:  # A full disk, a lost mount: nothing is presented as finished.
        record.note_interruption(f"{error.__class__.__name__}: {error}")
        raise RunInterrupted(f"{error}. The run folder {run.run_dir} is left resumable (every "
                             "file is written under a temporary name first, so none is "
                             "truncated): free space, then rerun the same command.") from None
    backups.remove()
    metrics = record.as_json()
    if multi_worker.is_chief(strategy):
        summary.print_summary(metrics, run.run_dir, run.task.main_metric,
                              run.task.report_files)
    else:
        log.info("%s finished; the chief wrote the run's outputs.",
                 multi_worker.task_name(strategy))
    _check_accuracy_gate(config.export.min_test_accuracy, record)
    return metrics


def _check_accuracy_gate(minimum: float, record: RunRecord) -> None:
    """--min_test_accuracy: the finished run stays as it is; only the exit status says it
    missed (as TF Hub's make_image_classifier --assert_accuracy_at_least)."""
    accuracy = record.final_phase().get("test", {}).get("accuracy")
    if minimum and accuracy is not None and accuracy < minimum:
        raise AccuracyGateMissed(
            f"the final test accuracy {accuracy:.4f} is {minimum - accuracy:.4f} below "
            f"--min_test_accuracy={minimum:g}. The run is finished and saved in "
            f"{record.run_dir} (export included) for inspection; nothing is deleted.")


def _finish(run: PreparedRun, record: RunRecord) -> None:
    """The final model, its export, the HParams summary, then the record marked finished."""
    run.task.clean_up(run.run_dir)  # Only training needs what the task cached.
    # The final model, as exported.
    checkpoint.write_model_atomically(run.model, os.path.join(run.run_dir, "model.keras"))
    record.artifacts.update(_export(run, record))
    hparams.log_hparams(os.path.join(run.run_dir, "logs"), run.config.flat(),
                        _final_metrics(record, run.task))
    record.finish()


def _start_record(run: PreparedRun, backups: resume.Backups) -> RunRecord:
    """A new record, or a resumed run's record (finished phases kept, the restart noted)."""
    record = RunRecord.load(run.run_dir) if run.resuming else RunRecord(run.run_dir)
    record.description.update(_description(run))
    if run.resuming:
        record.resumed.append(_resume_point(backups, run.run_dir))
        record.error = None  # What interrupted it (a full disk) is in the past now.
    record.save()
    return record


def _resume_point(backups: resume.Backups, folder: str) -> dict:
    state = backups.latest()
    point = ({"phase": state["record"]["name"], "epochs_done": state["record"]["epochs_done"]}
             if state else {"phase": None, "epochs_done": 0})
    log.info("Resuming the unfinished run in %s %s.", folder,
             f"after {point['phase']} epoch {point['epochs_done']}" if state else
             "from the start (it stopped before its first epoch ended)")
    return point


def _both_phases(run: PreparedRun, callbacks: list, backups: resume.Backups,
                 record: RunRecord) -> None:
    """Phase 1, then phase 2 unless skipped; metrics.json is updated after each."""
    phase1, phase2 = run.phases
    finetune.freeze(run.backbone)
    backups.restore_best_score()
    state = backups.latest()
    multi_worker.check_same_everywhere(
        run.strategy, (state or {}).get("weights", "no backup"), "the epoch to resume after",
        "Every worker resumes from the chief's backups: put --output_dir on a filesystem that "
        "all workers see (NFS, GCS), or rerun with a new --run_name.")
    if state and state["record"]["name"] == phase2.name:
        log.info("Phase 1 finished before the restart; its results are kept in metrics.json.")
    else:
        log.info("%s\nPhase 1 (feature extraction): %s frozen, training the new head; %s.\n%s",
                 BANNER, run.backbone_name, _trainable_summary(run.model), BANNER)
        with run.strategy.scope():
            result = _phase1(run, phase1, callbacks, backups)
        if run.plan is None:  # Phase 1 is the last phase: its test report is the final one.
            record.description["export_model"] = _select_export_weights(run, backups.checkpoint)
        record.phases["phase1"] = {**result, **_test_results(run, phase1)}
        record.save()
    if run.plan is None:
        return
    _unfreeze(run)
    tensorboard.start_phase(callbacks, 2, phase2.first_epoch,
                            f"Phase 2 (fine-tuning) from epoch {phase2.first_epoch}: top "
                            f"{run.plan.count} of {run.plan.total_layers} {run.backbone_name} "
                            f"layers unfrozen, learning rate "
                            f"{run.config.phase2.fine_tune_learning_rate:g}")
    with run.strategy.scope():
        result = _phase2(run, phase2, callbacks, backups)
    record.description["export_model"] = _select_export_weights(run, backups.checkpoint)
    record.phases["phase2"] = {**result, **_test_results(run, phase2),
                               "unfrozen_layers": run.plan.count,
                               "first_unfrozen_layer": run.plan.first_layer}
    record.save()


def _select_export_weights(run: PreparedRun, best: BestCheckpoint) -> dict:
    """With --export_model=best, loads the best checkpoint's weights into the model, so the
    final test report, model.keras and every export are that model; returns what metrics.json
    records of the choice. The best may be from phase 1, if phase 2 never improved on it."""
    choice = run.config.export.export_model
    last_epoch = (run.phases[1] if run.plan else run.phases[0]).last_epoch
    if choice == "last":
        return {"choice": choice, "epoch": last_epoch}
    if best.best_epoch is None or not os.path.exists(best.filepath):
        return {"choice": choice, "epoch": last_epoch,
                "note": "no epoch was checkpointed, so the last epoch is exported"}
    run.model.load_weights(best.filepath)
    log.info("Exporting the best checkpoint: epoch %d, %s %.4f (--export_model=best).",
             best.best_epoch, best.monitor, best.best)
    return {"choice": choice, "epoch": best.best_epoch, best.monitor: float(best.best)}


def _unfreeze(run: PreparedRun) -> None:
    trainable_before = _count(run.model.trainable_weights)
    finetune.unfreeze_top(run.backbone, run.plan)
    log.info("%s\nPhase 2 (fine-tuning): unfroze the top %d of %d %s layers (from %r up), "
             "BatchNormalization kept frozen: %s more parameters trainable, %s; learning rate "
             "%g.\n%s", BANNER, run.plan.count, run.plan.total_layers, run.backbone_name,
             run.plan.first_layer, f"{_count(run.model.trainable_weights) - trainable_before:,}",
             _trainable_summary(run.model), run.config.phase2.fine_tune_learning_rate, BANNER)


def _phase1(run: PreparedRun, phase: phases.Phase, callbacks: list,
            backups: resume.Backups) -> dict:
    """Phase 1 on cached features when it is safe, else on images as in the keras.io recipe."""
    use_cache, why = _decide_cache(run, "Phase 1 feature cache")
    if use_cache:
        part = feature_cache.pooled_features(run.model)
        result = phases.fit_on_cached(part, run.splits, phase, callbacks, backups,
                                      os.path.join(run.run_dir, "feature_cache"),
                                      run.config.data.cache_memory_mb, _store_entries(run, part))
    else:
        result = phases.fit(run.model, run.splits.train, run.splits.validation, phase,
                            callbacks, backups)
    return {**result, "feature_cache": why}


def _phase2(run: PreparedRun, phase: phases.Phase, callbacks: list,
            backups: resume.Backups) -> dict:
    """Phase 2 on the cached activations of the frozen boundary when it is safe, else on
    images. The top of the backbone and the head train either way; only the frozen bottom's
    repeated forward passes are saved."""
    use_cache, why = _decide_cache(run, "Phase 2 boundary cache")
    part = feature_cache.frozen_boundary(run.model, run.backbone) if use_cache else None
    if part is None:
        why = why if not use_cache else "off: nothing below the unfrozen layers is frozen"
        result = phases.fit(run.model, run.splits.train, run.splits.validation, phase,
                            callbacks, backups)
    else:
        log.info("Phase 2 trains on %s.", part.description)
        result = phases.fit_on_cached(part, run.splits, phase, callbacks, backups,
                                      os.path.join(run.run_dir, "boundary_cache"),
                                      run.config.data.cache_memory_mb, _store_entries(run, part))
    return {**result, "boundary_cache": why}


def _store_entries(run: PreparedRun, part: feature_cache.CachedPart) -> dict[str, str] | None:
    """The --feature_store folders of this part's train and validation activations, if any.

    None without a store, and for a task whose training labels carry more than the data's
    (distillation): the store keys the data, not a teacher.
    """
    store = run.config.data.feature_store
    if not store or run.task.packs_labels or not run.splits.fingerprints:
        return None
    return {split: feature_store.entry_dir(store, run.config, run.image_size, part.description,
                                           fingerprint)
            for split, fingerprint in run.splits.fingerprints.items()}


def _decide_cache(run: PreparedRun, what: str) -> tuple[bool, str]:
    config = run.config
    use_cache, why = feature_cache.decide(config.phase1.feature_cache, config.data.augmented,
                                          config.runtime.strategy)
    log.info("%s: %s.", what, why)
    return use_cache, why


def _test_results(run: PreparedRun, phase: phases.Phase) -> dict:
    """The test split's loss and metrics, and its report in `<run dir>/report/<phase>/`."""
    if run.splits.test is None:
        return {}
    results = phases.evaluate(run.model, run.splits.test, phase)
    log.info("%s test: %s", phase.name,
             ", ".join(f"{key} {value:.4f}" for key, value in results["test"].items()))
    out_dir = os.path.join(run.run_dir, "report", phase.name)
    headline = run.task.write_report(
        _predict_function(run.model), run.splits.test, run.config.export.top_k, out_dir,
        os.path.join(run.run_dir, "logs", "report"), phase.last_epoch - 1,
        f"{phase.name}, test split")
    return {**results, "report": {"path": out_dir, **headline}}


def _export(run: PreparedRun, record: RunRecord) -> dict:
    """The SavedModel (warm-up requests from real held-out images), any TFLite variants, and
    what the task adds once the export exists (a distilled student's comparison)."""
    held_out = run.splits.test if run.splits.test is not None else run.splits.validation
    pixels = next(iter(held_out.unbatch().batch(HELD_OUT_IMAGES)))[0].numpy()
    top_k = run.config.export.top_k
    exported = {"export": saved_model.export_saved_model(
        run.model, os.path.join(run.run_dir, "export"), run.task.output_names,
        lambda outputs: run.task.serving_outputs(outputs, top_k), pixels[:WARMUP_IMAGES],
        decode.max_pixels(run.config.data.max_image_megapixels))}
    if run.config.export.export_tflite:
        exported["tflite"] = tflite.export_and_verify(
            run.model, os.path.join(run.run_dir, "tflite"), list(run.config.export.export_tflite),
            run.task.output_names, pixels, run.task.compare_outputs,
            representative=run.splits.train.examples)  # int8 calibrates on training images.
        for variant, check in exported["tflite"].items():
            log.info("TFLite %s: %s, %.1f MB; against Keras on %d images: top-1 agreement %s, "
                     "max abs diff %.2g.", variant, check["path"], check["bytes"] / 1e6,
                     check["images"], check.get("top1_agreement", "n/a"), check["max_abs_diff"])
    exported.update(run.task.after_export(run.model, exported["export"], pixels,
                                          run.splits.test, record.final_phase().get("test", {})))
    return exported


def _callbacks(folder: str, model: keras.Model, task: Task,
               restore_dir: str | None) -> tuple[list, resume.Backups]:
    """Shared by both phases: stop on a non-finite loss, one TensorBoard log on one epoch axis,
    one best checkpoint (a diverged epoch never improves on it, so it stays the last good one),
    and the per-epoch backups a killed run resumes from (they keep the checkpoint's best score).
    """
    best = BestCheckpoint(model, os.path.join(folder, "checkpoints", "best.keras"),
                          monitor=task.monitor, mode=task.monitor_mode)
    return ([keras.callbacks.TerminateOnNaN(),
             tensorboard.PhasedTensorBoard(os.path.join(folder, "logs")), best],
            resume.Backups(os.path.join(folder, resume.BACKUP_FOLDER), best, restore_dir))


def _predict_function(model: keras.Model):
    """A compiled inference call on one batch, on one device.

    Not `predict_on_batch`: under MirroredStrategy (Keras 3.15) it gives every replica the whole
    batch and concatenates their outputs, returning each prediction once per replica.
    """
    return tf.function(lambda images: model(images, training=False))


def _final_metrics(record: RunRecord, task: Task) -> dict[str, float]:
    """The HParams dashboard's metrics: the last phase's test results, best validation score."""
    final = record.final_phase()
    values = {f"test_{key}": value for key, value in final.get("test", {}).items()}
    values.update({key: value for key, value in final.get("report", {}).items()
                   if key != "path"})
    validation = [value for phase in record.phases.values()
                  for value in phase.get("history", {}).get(task.monitor, [])]
    if validation:
        values[f"best_{task.monitor}"] = (max if task.monitor_mode == "max" else min)(validation)
    return values


def _count(weights) -> int:
    return sum(int(keras.ops.size(weight)) for weight in weights)


def _trainable_summary(model: keras.Model) -> str:
    return f"{_count(model.trainable_weights):,} of {_count(model.weights):,} parameters trainable"


def _description(run: PreparedRun) -> dict:
    return {"run_dir": run.run_dir, "config": run.config.flat(), "backbone": run.backbone_name,
            "image_size": run.image_size, "task": run.task.name, **run.task.summary(),
            "images_cached": run.splits.images_cached,
            "skipped_files": run.splits.skipped_files}
