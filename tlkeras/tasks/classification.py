"""Classification: one class per image, a softmax head, accuracy, a per-class report."""

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tlkeras.artifacts.contract import CLASSIFIER_OUTPUT
from tlkeras.data.sources import LABEL_CLASSES
from tlkeras.model.losses import SmoothedSparseCrossentropy
from tlkeras.reporting import classification as report
from tlkeras.tasks.base import Task
from tlkeras.tasks.class_weights import class_weights


class Classification(Task):
    name = "classification"
    labels = LABEL_CLASSES
    monitor = "val_accuracy"
    monitor_mode = "max"
    main_metric = "accuracy"
    report_files = "confusion_matrix.png, misclassified.png"

    def __init__(self, class_names: list[str], label_smoothing: float = 0.0,
                 class_weight: dict[int, float] | None = None):
        super().__init__(class_names)
        self.label_smoothing = label_smoothing
        self.class_weight = class_weight

    @classmethod
    def create(cls, config, splits) -> "Classification":
        training = config.training
        return cls(splits.output_names, training.label_smoothing,
                   class_weights(training.class_weight, splits.output_names,
                                 lambda: splits.train.in_order()))

    @property
    def class_names(self) -> list[str]:
        return self.output_names

    def build_head(self, features):
        return keras.layers.Dense(len(self.class_names), activation="softmax", dtype="float32",
                                  name=CLASSIFIER_OUTPUT)(features)

    def evaluation_compile_args(self) -> dict:
        return {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}

    def training_compile_args(self) -> dict:
        """With --label_smoothing, the training loss sees smoothed labels; validation and test
        metrics still compare with the true class."""
        if not self.label_smoothing:
            return self.evaluation_compile_args()
        return {"loss": SmoothedSparseCrossentropy(self.label_smoothing),
                "metrics": ["accuracy"]}

    def serving_outputs(self, outputs, top_k: int) -> dict:
        """Probabilities, the top class (id and name) and the top k, labels baked in."""
        labels = tf.constant(self.class_names)
        class_ids = tf.argmax(outputs, axis=-1)
        top_k_scores, top_k_ids = tf.math.top_k(outputs, k=min(top_k, len(self.class_names)))
        return {CLASSIFIER_OUTPUT: outputs, "class_ids": class_ids,
                "class_names": tf.gather(labels, class_ids), "top_k_scores": top_k_scores,
                "top_k_class_ids": tf.cast(top_k_ids, tf.int64),
                "top_k_class_names": tf.gather(labels, top_k_ids)}

    def compare_outputs(self, expected: np.ndarray, actual: np.ndarray) -> dict:
        return {"max_abs_diff": float(np.abs(actual - expected).max()),
                "top1_agreement": float(np.mean(actual.argmax(1) == expected.argmax(1)))}

    def write_report(self, predict: Callable, test, top_k: int, out_dir: str, log_dir: str,
                     step: int, title: str) -> dict:
        result = report.write_report(report.collect_predictions(predict, test),
                                     self.class_names, top_k, out_dir, log_dir, step, title)
        top_k_key = next(key for key in result if key.startswith("top_"))
        return {"macro_f1": result["macro_avg"]["f1"], top_k_key: result[top_k_key]}

    def summary(self) -> dict:
        weights = ({"class_weight": {name: round(self.class_weight[index], 4)
                                     for index, name in enumerate(self.class_names)}}
                   if self.class_weight else {})
        return {"num_classes": len(self.class_names), "class_names": self.class_names, **weights}
