"""The interface every task implements: what differs between heads, in one object.

A task owns its head (the layers after the pooled backbone features), its loss and metrics, the
validation metric that picks the best checkpoint, what the SavedModel's signatures return, how a
TFLite model's outputs are compared with Keras', its evaluation report, and what metrics.json
records about its outputs. Training, export and reporting ask the task instead of branching on
its kind (in the spirit of TF Model Garden's `Task` and keras-hub's task models).
"""

import abc
from collections.abc import Callable
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from tlkeras.model import network


class Task(abc.ABC):
    """One training objective; subclasses fill in the class variables and the methods."""

    name: ClassVar[str]
    labels: ClassVar[str]  # What the data source reads as labels (tlkeras.data.sources).
    monitor: ClassVar[str]  # The validation metric of the best checkpoint...
    monitor_mode: ClassVar[str]  # ...and whether higher ("max") or lower ("min") is better.
    main_metric: ClassVar[str]  # The test metric printed first in the run's summary.
    report_files: ClassVar[str]  # The report's figures, for the summary.
    packs_labels: ClassVar[bool] = False  # Training labels carry more than the test labels.
    class_weight: dict[int, float] | None = None  # `fit`'s class_weight (classification).

    def __init__(self, output_names: list[str]):
        self.output_names = list(output_names)

    @classmethod
    @abc.abstractmethod
    def create(cls, config, splits) -> "Task":
        """The task for a run's config (`tlkeras.config.Config`) and loaded data."""

    @abc.abstractmethod
    def build_head(self, features: keras.KerasTensor) -> keras.KerasTensor:
        """The output layers on the pooled, dropped-out backbone features (float32 output)."""

    @abc.abstractmethod
    def evaluation_compile_args(self) -> dict:
        """loss and metrics for `evaluate` on the test split, whose labels are plain."""

    def training_compile_args(self) -> dict:
        """loss and metrics for `fit` on the training and validation data."""
        return self.evaluation_compile_args()

    @abc.abstractmethod
    def serving_outputs(self, outputs: tf.Tensor, top_k: int) -> dict[str, tf.Tensor]:
        """The SavedModel signatures' named outputs, from the model's output tensor."""

    @abc.abstractmethod
    def compare_outputs(self, expected: np.ndarray, actual: np.ndarray) -> dict:
        """How far another runtime's outputs (TFLite) are from Keras' on the same images."""

    @abc.abstractmethod
    def write_report(self, predict: Callable, test: tf.data.Dataset, top_k: int, out_dir: str,
                     log_dir: str, step: int, title: str) -> dict:
        """The test split's report in `out_dir` and TensorBoard; returns its headline figures."""

    @abc.abstractmethod
    def summary(self) -> dict:
        """What metrics.json records about the outputs (class names, target statistics)."""

    def model_name(self, backbone_name: str) -> str:
        return f"tlkeras_{backbone_name}"

    def build_model(self, backbone: keras.Model, backbone_name: str, dropout: float,
                    augmentation=None) -> keras.Model:
        """Raw pixels -> [augmentation] -> preprocessing -> backbone -> pooling -> this head."""
        return network.build_model(backbone, backbone_name, self.build_head, dropout,
                                   augmentation, self.model_name(backbone_name))

    def prepare_training_data(self, splits, run_dir: str, cache_memory_mb: int):
        """The training and validation data as this task trains on them (default: as loaded)."""
        return splits

    def clean_up(self, run_dir: str) -> None:
        """Removes what `prepare_training_data` left in the run folder (default: nothing)."""
        del run_dir

    def after_export(self, model: keras.Model, export_path: str, pixels: np.ndarray,
                     test: tf.data.Dataset | None, final_test: dict) -> dict:
        """Extra figures for metrics.json once the export exists (default: none)."""
        return {}
