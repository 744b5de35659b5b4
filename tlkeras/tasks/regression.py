"""Regression: real-valued targets, a linear head in normalised units, MAE and RMSE.

The targets are normalised with the training split's mean and standard deviation: the Dense
layer predicts unit-variance values (its zero-initialised bias starts every prediction at the
training mean) and an inverted `Normalization` layer maps them back, so the model, its
checkpoints and its exports all predict in the targets' own units. The loss sees unit-variance
targets (`ScaledRegressionLoss`), so one learning rate suits targets in any units.
"""

from collections.abc import Callable

import keras
import numpy as np

from tlkeras.artifacts.contract import REGRESSOR_OUTPUT
from tlkeras.data.sources import LABEL_NUMBERS
from tlkeras.model.losses import ScaledRegressionLoss
from tlkeras.reporting import regression as report
from tlkeras.tasks.base import Task


class Regression(Task):
    name = "regression"
    labels = LABEL_NUMBERS
    monitor = "val_loss"  # Unit-free, unlike MAE, when targets differ in scale.
    monitor_mode = "min"
    main_metric = "mae"
    report_files = "predicted_vs_true.png"

    def __init__(self, target_names: list[str], mean: np.ndarray, std: np.ndarray,
                 loss: str = "mse"):
        super().__init__(target_names)
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)  # A constant target gets 1: no division by 0.
        self.loss = loss

    @classmethod
    def create(cls, config, splits) -> "Regression":
        values = splits.train_targets
        std = values.std(axis=0)
        return cls(splits.output_names, values.mean(axis=0), np.where(std > 0, std, 1.0),
                   config.model.regression_loss)

    def model_name(self, backbone_name: str) -> str:
        return f"tlkeras_{backbone_name}_regressor"

    def build_head(self, features):
        normalised = keras.layers.Dense(len(self.output_names), dtype="float32",
                                        name="normalised_predictions")(features)
        return keras.layers.Normalization(mean=self.mean, variance=np.square(self.std),
                                          invert=True, dtype="float32",
                                          name=REGRESSOR_OUTPUT)(normalised)

    def evaluation_compile_args(self) -> dict:
        return {"loss": ScaledRegressionLoss(self.loss, tuple(float(s) for s in self.std)),
                "metrics": [keras.metrics.MeanAbsoluteError(name="mae"),
                            keras.metrics.RootMeanSquaredError(name="rmse")]}

    def serving_outputs(self, outputs, top_k: int) -> dict:
        return {REGRESSOR_OUTPUT: outputs}

    def compare_outputs(self, expected: np.ndarray, actual: np.ndarray) -> dict:
        return {"max_abs_diff": float(np.abs(actual - expected).max())}

    def write_report(self, predict: Callable, test, top_k: int, out_dir: str, log_dir: str,
                     step: int, title: str) -> dict:
        result = report.write_report(*report.collect(predict, test), self.output_names,
                                     self.mean, out_dir, log_dir, step, title)
        return {"r2": result["r2"], "baseline_mae": result["baseline_mae"]}

    def summary(self) -> dict:
        return {"target_names": self.output_names, "target_mean": self.mean.tolist(),
                "target_std": self.std.tolist()}
