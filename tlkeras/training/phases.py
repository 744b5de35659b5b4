"""A phase is one `fit` call: on images, or (phase 1) on cached backbone features.

`fit` compiles for the phase (needed after any change of `trainable`), resumes from the run's
backup if a killed run had started this phase, and fits on the shared epoch axis.
`fit_on_cached` is the same phase trained through the model's own layers above a frozen part
whose activations are computed once (`tlkeras.training.feature_cache`): the pooled features in
phase 1, the frozen boundary in phase 2. The run, the tests and the benchmark all use it instead
of wiring a cache themselves.
"""

import dataclasses
import inspect
import math
import os
import shutil
import sys
import time

import keras
import tensorflow as tf

from tlkeras import data
from tlkeras.errors import ConfigError, TrainingStopped
from tlkeras.tasks.base import Task
from tlkeras.training import activations, feature_cache, multi_worker, resume


@dataclasses.dataclass
class Phase:
    """One `fit` call: its name, epoch range on the shared axis, optimizer and task."""

    name: str
    first_epoch: int
    epochs: int
    optimizer: keras.optimizers.Optimizer
    task: Task
    jit_compile: str | bool = "auto"
    learning_rate_flag: str = "learning_rate"  # Named when the loss diverges.

    @property
    def last_epoch(self) -> int:
        return self.first_epoch + self.epochs


def make_optimizer(flag: str, name: str, learning_rate, momentum: float = 0.0
                   ) -> keras.optimizers.Optimizer:
    """A keras.optimizers optimizer by name, e.g. `adam` or `sgd`, with a rate or a schedule
    (`tlkeras.training.schedules`) and `momentum` if this optimizer has such a setting (the
    phases may use different optimizers; `check_momentum` refuses a momentum none can use)."""
    optimizer_class = _optimizer_class(flag, name)
    has_momentum = "momentum" in inspect.signature(optimizer_class).parameters
    return optimizer_class(learning_rate=learning_rate,
                           **({"momentum": momentum} if momentum and has_momentum else {}))


def check_momentum(momentum: float, optimizers: dict[str, str]) -> None:
    """ConfigError if --momentum is set but no phase's optimizer ({flag: name}) has one."""
    if momentum and not any("momentum" in inspect.signature(_optimizer_class(flag, name))
                            .parameters for flag, name in optimizers.items()):
        names = ", ".join(f"--{flag}={name}" for flag, name in optimizers.items())
        raise ConfigError("momentum", f"no phase's optimizer has a momentum setting ({names})",
                          "Drop --momentum, or use sgd or rmsprop for a phase.")


def _optimizer_class(flag: str, name: str) -> type:
    try:
        return type(keras.optimizers.get(name))
    except (ValueError, TypeError) as error:
        raise ConfigError(flag, f"unknown optimizer {name!r} ({error})",
                          "Pass a keras.optimizers name such as adam, sgd, rmsprop or adamw.") \
            from None


def fit(model: keras.Model, train, validation, phase: Phase, callbacks: list,
        backups: resume.Backups | None = None) -> dict:
    """Compiles for the phase and fits `train` (`TrainingData`) for the phase's epochs.

    With `backups`, a phase that a killed run had started continues after its last backed-up
    epoch, and every finished epoch is backed up.
    """
    model.compile(optimizer=phase.optimizer, **phase.task.training_compile_args(),
                  jit_compile=phase.jit_compile)
    multi_worker.enable_keras_fit(model)
    record = (backups and backups.restore(model, phase.name)) or \
        resume.PhaseRecord(phase.name, phase.first_epoch)
    if record.epochs_done < phase.last_epoch:
        model.fit(train.epochs(record.epochs_done, phase.last_epoch),
                  steps_per_epoch=train.steps_per_epoch, validation_data=validation,
                  initial_epoch=record.epochs_done, epochs=phase.last_epoch,
                  shuffle=False,  # TrainingData shuffles each epoch; Keras cannot.
                  class_weight=phase.task.class_weight,
                  callbacks=[*callbacks, record, *([backups.callback(record)] if backups else [])],
                  verbose=1 if sys.stdout.isatty() else 2)
    _stop_if_diverged(record, phase)
    return {"epochs": phase.epochs, "seconds": round(sum(record.epoch_seconds), 2),
            "epoch_seconds": record.epoch_seconds, "history": record.history}


def _stop_if_diverged(record: resume.PhaseRecord, phase: Phase) -> None:
    losses = record.history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):  # TerminateOnNaN stopped the fit.
        raise TrainingStopped(
            f"{phase.name} stopped in epoch {phase.first_epoch + len(losses)}: the training loss "
            f"became {losses[-1]} (TerminateOnNaN). The learning rate is probably too high for "
            f"this data: lower --{phase.learning_rate_flag} and run again.")


def fit_on_cached(part: feature_cache.CachedPart, splits, phase: Phase, callbacks: list,
                  backups: resume.Backups | None, cache_dir: str, cache_memory_mb: int,
                  store_entries: dict[str, str] | None = None) -> dict:
    """`fit` of `part.trainee` on activations computed once per image by `part.extract`.

    `splits` is a `tlkeras.data.DataSplits`. The activations live in memory within
    `cache_memory_mb`, else in `cache_dir`, which is removed afterwards (and before: a killed
    run may have left a partial one). With `store_entries` ({"train": folder, "validation":
    folder} of a feature store) they are read from, or kept in, those folders instead. The
    result says where they lived, how many batches the frozen part ran and how long the
    activations took to compute (or read from the store).
    """
    shutil.rmtree(cache_dir, ignore_errors=True)
    entries = store_entries or {}
    try:
        start = time.perf_counter()
        train = activations.compute(part.extract, splits.train.in_order(), splits.sizes["train"],
                                    cache_memory_mb, os.path.join(cache_dir, "train.tfrecord"),
                                    entries.get("train"))
        validation = activations.compute(part.extract, splits.validation,
                                         splits.sizes["validation"], cache_memory_mb,
                                         os.path.join(cache_dir, "validation.tfrecord"),
                                         entries.get("validation"))
        pass_seconds = time.perf_counter() - start
        like = splits.train
        result = fit(part.trainee,
                     data.training_data(train.examples, train.size, like.batch_size, like.seed,
                                        like.shuffle_buffer, like.options, cache_file=None),
                     data.pipeline(validation.examples, like.batch_size, like.options, None),
                     phase, callbacks, backups)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return {**result, "cache": {"what": part.description, "where": train.location,
                                "batches_computed": train.batches_computed +
                                validation.batches_computed,
                                "seconds": round(pass_seconds, 2)}}


def fit_on_cached_features(model: keras.Model, splits, phase: Phase, callbacks: list,
                           backups: resume.Backups | None, cache_dir: str,
                           cache_memory_mb: int) -> dict:
    """Phase 1's `fit_on_cached`: the head on pooled features of the frozen backbone."""
    return fit_on_cached(feature_cache.pooled_features(model), splits, phase, callbacks,
                         backups, cache_dir, cache_memory_mb)


def evaluate(model: keras.Model, test: tf.data.Dataset | None, phase: Phase) -> dict:
    """{"test": {"loss", metrics...}} of the full model, or {} without a test split.

    Compiles for the test labels if needed: after phase 1 on features only the head was
    compiled, and a task whose training labels carry more (distillation) compiled for those.
    """
    if test is None:
        return {}
    if not model.compiled or phase.task.packs_labels:
        with model.distribute_strategy.scope():  # Metrics are variables of the strategy.
            model.compile(**phase.task.evaluation_compile_args(),
                          jit_compile=phase.jit_compile)
    multi_worker.enable_keras_fit(model)
    result = {key: float(value) for key, value in
              model.evaluate(test, return_dict=True, verbose=0).items()}
    return {"test": result}
