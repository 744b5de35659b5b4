"""What the head learns: class probabilities, real-valued targets, or a teacher's probabilities.

A `Task` holds everything that differs between them in training: the loss and metrics to compile
with (for the training and validation data, and for the plain test labels), and the validation
metric that picks the best checkpoint. The rest of tlkeras asks the task instead of branching.
"""

import dataclasses

import keras

from tlkeras import losses

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclasses.dataclass(frozen=True)
class Task:
    """The training objective of one run."""

    kind: str = CLASSIFICATION
    regression_loss: str = "mse"  # Regression: "mse" or "huber", on unit-variance targets.
    target_scale: tuple[float, ...] = ()  # Regression: the training targets' standard deviations.
    distill_temperature: float | None = None  # Set when distilling: labels carry the teacher's.
    distill_alpha: float = 0.1

    @property
    def regression(self) -> bool:
        return self.kind == REGRESSION

    @property
    def distilling(self) -> bool:
        return self.distill_temperature is not None

    @property
    def monitor(self) -> str:
        """The validation metric of the best checkpoint (val_loss is unit-free for regression)."""
        return "val_loss" if self.regression else "val_accuracy"

    @property
    def monitor_mode(self) -> str:
        return "min" if self.regression else "max"

    def training_compile_args(self) -> dict:
        """loss and metrics for `fit` on the training and validation data."""
        if self.distilling:
            return {"loss": losses.DistillationLoss(self.distill_temperature, self.distill_alpha),
                    "metrics": [keras.metrics.MeanMetricWrapper(losses.distillation_accuracy,
                                                                name="accuracy")]}
        return self.evaluation_compile_args()

    def evaluation_compile_args(self) -> dict:
        """loss and metrics for `evaluate` on the test split, whose labels are plain."""
        if self.regression:
            return {"loss": losses.ScaledRegressionLoss(self.regression_loss, self.target_scale),
                    "metrics": [keras.metrics.MeanAbsoluteError(name="mae"),
                                keras.metrics.RootMeanSquaredError(name="rmse")]}
        return {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
