"""--class_weight: how much each class's examples weigh in the training loss.

`auto` is the "balanced" rule of scikit-learn and the keras.io imbalanced-data example:
n_images / (n_classes x count of the class), so each class weighs as much in total and a class
ten times rarer counts ten times more per image. A file names its classes, not their ids, so it
cannot silently shift when a class folder is added.
"""

import json
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tlkeras.errors import ConfigError


def class_weights(setting: str, class_names: list[str],
                  train: Callable[[], tf.data.Dataset]) -> dict[int, float] | None:
    """`fit`'s class_weight for --class_weight (`none`, `auto` or a JSON file path); `train()`
    gives the training split's batched (images, class ids), read once, only for `auto`."""
    if setting == "none":
        return None
    if setting == "auto":
        counts = _class_counts(train(), len(class_names))
        if not counts.all():
            empty = [name for name, count in zip(class_names, counts, strict=True) if not count]
            raise ConfigError("class_weight", f"classes {empty} have no training image, so "
                              "auto cannot weigh them", "Add images to them, or pass "
                              "--class_weight=none or a file.")
        return {index: float(counts.sum() / (len(counts) * count))
                for index, count in enumerate(counts)}
    return _from_file(setting, class_names)


def _class_counts(train: tf.data.Dataset, classes: int) -> np.ndarray:
    labels = train.map(lambda images, labels: labels)
    counts = np.zeros(classes, np.int64)
    for batch in labels.as_numpy_iterator():
        counts += np.bincount(batch.reshape(-1).astype(np.int64), minlength=classes)
    return counts


def _from_file(path: str, class_names: list[str]) -> dict[int, float]:
    fix = (f"Pass --class_weight=auto, none, or a JSON file {{\"<class>\": weight, ...}} naming "
           f"each of the {len(class_names)} classes ({', '.join(class_names[:5])}, ...) with a "
           "positive weight.")
    try:
        with open(path, encoding="utf-8") as file:
            weights = json.load(file)
    except (OSError, ValueError) as error:
        raise ConfigError("class_weight", f"cannot read {path!r} as JSON ({error})", fix) \
            from None
    if not isinstance(weights, dict) or set(weights) != set(class_names):
        names = sorted(weights) if isinstance(weights, dict) else type(weights).__name__
        raise ConfigError("class_weight", f"{path!r} names {names}, not the classes "
                          f"{class_names}", fix)
    if not all(isinstance(value, int | float) and value > 0 and np.isfinite(value)
               for value in weights.values()):
        raise ConfigError("class_weight", f"{path!r} has a weight that is not a positive "
                          "number", fix)
    return {index: float(weights[name]) for index, name in enumerate(class_names)}
