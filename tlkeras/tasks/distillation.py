"""Knowledge distillation: a classifier trained on a tlkeras export's probabilities too.

The teacher is any tlkeras classification export (a run folder, its `export/` folder or one
version), loaded as a SavedModel: no Keras model, no training code, inference only. Its
`serving_pixels` signature gives the probabilities for each training and validation image in
one pass before training (`tlkeras.training.activations`, in the main thread), kept beside the
images (in memory within --cache_memory_mb, else in a file in the run folder), so no epoch of
either phase runs the teacher again. Labels become [class id, teacher probabilities...] (see
tlkeras.model.losses.DistillationLoss); the test split keeps its plain labels. As a task it is
classification with another training loss, training data that carry the teacher's outputs,
and a teacher-versus-student comparison once the student is exported.

The teacher sees the student's images resized to its own input size; a student trained at a
smaller size therefore gives the teacher upsampled images.
"""

import dataclasses
import os
import shutil
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from tlkeras import data
from tlkeras.artifacts.contract import CLASSIFIER_OUTPUT, PIXELS_INPUT, ExportedModel
from tlkeras.errors import ConfigError
from tlkeras.model import losses
from tlkeras.reporting import classification as report
from tlkeras.tasks.classification import Classification
from tlkeras.training import activations

CACHE_DIR = "distill_cache"  # In the run folder while training; removed when the run ends.
SPEED_BATCH = 64  # Images per call when measuring inference speed.
SPEED_REPEATS = 5


@dataclasses.dataclass
class Teacher:
    """A loaded teacher export and what the run reports about it."""

    path: str  # The version folder.
    serve: tf.types.experimental.ConcreteFunction  # serving_pixels: pixels -> dict of outputs.
    image_size: int
    parameters: int
    # The loaded SavedModel: `serve` only weakly references its variables when called from a
    # compiled function, so the object that owns them must stay alive with the teacher.
    saved_model: object = None

    def probabilities(self, images: tf.Tensor) -> tf.Tensor:
        """The teacher's class probabilities for raw 0-255 pixels of any square size."""
        if images.shape[1] != self.image_size:
            images = tf.image.resize(images, (self.image_size, self.image_size))
        return self.serve(**{PIXELS_INPUT: images})[CLASSIFIER_OUTPUT]


def load_teacher(path: str, class_names: list[str]) -> Teacher:
    """Loads the teacher export at `path` and checks that it classifies the same classes."""
    try:
        exported = ExportedModel.open(path, flag="distill_from")
    except ConfigError:
        raise ConfigError("distill_from", f"{path!r} holds no tlkeras export", "Pass a "
                          "finished run folder, its export/ folder or one version.") from None
    if not exported.is_classifier():
        raise ConfigError("distill_from", f"{exported.path!r} is not a classifier's export",
                          "Distil from a --task=classification run.")
    if exported.labels() != class_names:
        raise ConfigError("distill_from", f"the teacher's classes {exported.labels()} differ "
                          f"from the data's {class_names}", "Distil on data with the teacher's "
                          "classes, in the same order.")
    return Teacher(exported.path, exported.signature(), exported.input_size(),
                   exported.parameters(), exported.load())


def with_teacher_outputs(splits: data.DataSplits, teacher: Teacher, cache_memory_mb: int,
                         run_dir: str) -> data.DataSplits:
    """Training and validation labels packed with the teacher's probabilities, computed once."""
    train_data = splits.train
    train = _packed(train_data.in_order(), splits.sizes["train"], teacher, cache_memory_mb,
                    os.path.join(run_dir, CACHE_DIR, "train.tfrecord"))
    validation = _packed(splits.validation, splits.sizes["validation"], teacher,
                         cache_memory_mb, os.path.join(run_dir, CACHE_DIR, "validation.tfrecord"))
    return dataclasses.replace(
        splits, validation=data.pipeline(validation, train_data.batch_size, train_data.options,
                                         None),
        train=data.training_data(train, splits.sizes["train"], train_data.batch_size,
                                 train_data.seed, train_data.shuffle_buffer, train_data.options,
                                 None))


def _packed(batches: tf.data.Dataset, size: int | None, teacher: Teacher, memory_mb: int,
            path: str) -> tf.data.Dataset:
    """Unbatched (image, [label, teacher probabilities...]) from batched (image, label)."""
    computed = activations.compute(lambda images: (images, teacher.probabilities(images)),
                                   batches, size, memory_mb, path)

    def pack(outputs, label):
        images, probabilities = outputs
        return images, tf.concat([tf.cast(label, tf.float32)[tf.newaxis], probabilities], 0)

    return computed.examples.map(pack, num_parallel_calls=tf.data.AUTOTUNE)


def compare(teacher: Teacher, student_serve, pixels: np.ndarray, test: tf.data.Dataset | None,
            student_accuracy: float | None) -> dict:
    """Teacher vs student: input size, inference images/s and test accuracy.

    Both speeds are measured here, one after the other, through the two SavedModels'
    `serving_pixels` signatures on the same held-out images, each at its own input size.
    """
    student_size = int(student_serve.structured_input_signature[1][PIXELS_INPUT].shape[1])
    result = {
        "teacher": {"path": teacher.path, "parameters": teacher.parameters,
                    "image_size": teacher.image_size,
                    "images_per_second": images_per_second(teacher.serve, teacher.image_size,
                                                           pixels)},
        "student": {"image_size": student_size,
                    "images_per_second": images_per_second(student_serve, student_size,
                                                           pixels)}}
    if test is not None:
        result["teacher"]["test_accuracy"] = test_accuracy(teacher, test)
        result["student"]["test_accuracy"] = student_accuracy
    return result


def test_accuracy(teacher: Teacher, test: tf.data.Dataset) -> float:
    """The teacher's top-1 accuracy on the (plain-labelled) test split."""
    predictions = report.collect_predictions(teacher.probabilities, test)
    return float(np.mean(predictions.probabilities.argmax(axis=1) == predictions.labels))


def images_per_second(serve, image_size: int, pixels: np.ndarray) -> float:
    """Median throughput of a `serving_pixels` signature on one batch, after a warm-up call."""
    batch = tf.image.resize(tf.constant(pixels[:SPEED_BATCH], tf.float32),
                            (image_size, image_size))
    serve(**{PIXELS_INPUT: batch})
    seconds = []
    for _ in range(SPEED_REPEATS):
        start = time.perf_counter()
        serve(**{PIXELS_INPUT: batch})[CLASSIFIER_OUTPUT].numpy()
        seconds.append(time.perf_counter() - start)
    return round(len(batch) / statistics.median(seconds), 1)


class Distillation(Classification):
    """Classification whose training loss mixes the true labels with a teacher's outputs."""

    packs_labels = True  # Training labels: [class id, teacher probabilities...].

    def __init__(self, class_names: list[str], teacher: Teacher, temperature: float,
                 alpha: float):
        super().__init__(class_names)
        self.teacher = teacher
        self.temperature = temperature
        self.alpha = alpha

    @classmethod
    def create(cls, config, splits) -> "Distillation":
        teacher = load_teacher(config.distill.distill_from, splits.output_names)
        return cls(splits.output_names, teacher, config.distill.distill_temperature,
                   config.distill.distill_alpha)

    def training_compile_args(self) -> dict:
        return {"loss": losses.DistillationLoss(self.temperature, self.alpha),
                "metrics": [keras.metrics.MeanMetricWrapper(losses.distillation_accuracy,
                                                            name="accuracy")]}

    def prepare_training_data(self, splits, run_dir: str, cache_memory_mb: int):
        self.clean_up(run_dir)  # A killed run's partial cache.
        return with_teacher_outputs(splits, self.teacher, cache_memory_mb, run_dir)

    def clean_up(self, run_dir: str) -> None:
        shutil.rmtree(os.path.join(run_dir, CACHE_DIR), ignore_errors=True)

    def after_export(self, model, export_path: str, pixels: np.ndarray, test,
                     final_test: dict) -> dict:
        """Teacher vs the exported student on held-out images (see `compare`)."""
        student = ExportedModel(export_path).signature()
        comparison = compare(self.teacher, student, pixels[:SPEED_BATCH], test,
                             final_test.get("accuracy"))
        comparison["student"]["parameters"] = model.count_params()
        return {"distillation": {"temperature": self.temperature, "alpha": self.alpha,
                                 **comparison}}
