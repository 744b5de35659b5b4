"""tlkeras' losses beyond Keras' own, registered so saved `.keras` files load with them.

- `SmoothedSparseCrossentropy`: cross-entropy on class ids with label smoothing, which Keras 3's
  `SparseCategoricalCrossentropy` lacks (its `CategoricalCrossentropy` has it, on one-hot labels).

- `ScaledRegressionLoss`: MSE or Huber on targets divided by their training standard deviation.
  The regression model predicts in the targets' own units (its last layer undoes the
  normalisation), yet the loss sees unit-variance targets, so one learning rate and one Huber
  delta suit targets in any units, and targets of different scales weigh alike.
- `DistillationLoss`: Hinton et al.'s knowledge distillation for a softmax student. The label
  tensor packs each example's class id and the teacher's probabilities (see
  tlkeras.tasks.distillation), because the teacher's outputs are computed once and cached with
  the data, not per step.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tlkeras")
class ScaledRegressionLoss(keras.losses.Loss):
    """`kind` ("mse" or "huber", delta 1) of (y_true - y_pred) / `scale`, averaged over targets."""

    def __init__(self, kind: str = "mse", scale=(1.0,), name: str = "scaled_regression_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.kind = kind
        self.scale = [float(value) for value in scale]

    def call(self, y_true, y_pred):
        scale = ops.convert_to_tensor(self.scale, dtype=y_pred.dtype)
        y_true = ops.cast(y_true, y_pred.dtype) / scale
        y_pred = y_pred / scale
        if self.kind == "huber":
            return keras.losses.huber(y_true, y_pred, delta=1.0)
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "scale": self.scale}


@keras.saving.register_keras_serializable(package="tlkeras")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Class ids -> one-hot smoothed towards uniform by `label_smoothing` -> cross-entropy with
    the predicted probabilities (Keras' categorical_crossentropy, the same smoothing rule)."""

    def __init__(self, label_smoothing: float = 0.0,
                 name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        one_hot = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="tlkeras")
class DistillationLoss(keras.losses.Loss):
    """alpha x cross-entropy with the true labels + (1 - alpha) x T^2 x KL(teacher_T || student_T).

    `y_true` is [batch, 1 + classes]: the class id, then the teacher's probabilities. Both models
    output probabilities, so the softened distributions are softmax(log(p) / T), which equals
    softmax(logits / T) exactly (log p and the logits differ by a constant per example); p is
    clipped at Keras' epsilon, as Keras' own cross-entropy on probabilities does. The T^2 factor
    keeps the soft term's gradients on the scale of the hard term's (Hinton et al., 2015).
    """

    def __init__(self, temperature: float = 4.0, alpha: float = 0.1,
                 name: str = "distillation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = float(temperature)
        self.alpha = float(alpha)

    def call(self, y_true, y_pred):
        labels, teacher = split_packed_labels(y_true)
        hard = keras.losses.sparse_categorical_crossentropy(labels, y_pred)
        teacher_soft = ops.softmax(_log(teacher) / self.temperature, axis=-1)
        student_log_soft = ops.log_softmax(_log(y_pred) / self.temperature, axis=-1)
        kl = ops.sum(teacher_soft * (_log(teacher_soft) - student_log_soft), axis=-1)
        return self.alpha * hard + (1 - self.alpha) * self.temperature ** 2 * kl

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "alpha": self.alpha}


@keras.saving.register_keras_serializable(package="tlkeras")
def distillation_accuracy(y_true, y_pred):
    """Top-1 accuracy against the class ids in packed distillation labels."""
    labels, _ = split_packed_labels(y_true)
    return keras.metrics.sparse_categorical_accuracy(labels, y_pred)


def split_packed_labels(y_true):
    """[batch, 1 + classes] -> (class ids [batch], teacher probabilities [batch, classes])."""
    y_true = ops.cast(y_true, "float32")
    return ops.cast(y_true[:, 0], "int32"), y_true[:, 1:]


def _log(probabilities):
    epsilon = keras.config.epsilon()
    return ops.log(ops.clip(ops.cast(probabilities, "float32"), epsilon, 1.0))
