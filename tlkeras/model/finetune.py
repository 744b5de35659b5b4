"""Which backbone layers phase 2 unfreezes, and the freezing itself.

Layers are counted in `backbone.layers` order (input layer excluded), as in the keras.io guide's
`fine_tune_at`. BatchNormalization layers stay frozen even inside the unfrozen top: in Keras 3 a
frozen BN layer runs in inference mode, so its moving statistics keep the values learnt on the
large pretraining set instead of being overwritten by small fine-tuning batches (see
keras-team/keras#20285 for why `training=False` at build time alone is not enough).
"""

import dataclasses

import keras

from tlkeras.config import parse_unfreeze
from tlkeras.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class UnfreezePlan:
    """Phase 2's choice: the top `count` of the backbone's layers, from `first_layer` up."""

    count: int
    first_layer: str
    total_layers: int


def backbone_layers(backbone: keras.Model) -> list:
    return [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]


def plan_unfreeze(backbone: keras.Model, unfreeze: str) -> UnfreezePlan:
    """Resolves `--unfreeze` (count, fraction or layer name) against the backbone's layers.

    Called before phase 1, so a bad value fails before any training time is spent.
    """
    layers = backbone_layers(backbone)
    count, fraction, first_layer = parse_unfreeze(unfreeze)
    if count is not None and count > len(layers):
        raise ConfigError("unfreeze", f"{count} layers is more than the {len(layers)} layers "
                          f"of {backbone.name}", f"Pass a count from 1 to {len(layers)}, or "
                          "--unfreeze=1.0 to unfreeze the whole backbone.")
    if fraction is not None:
        count = max(1, round(fraction * len(layers)))
    if first_layer is not None:
        names = [layer.name for layer in layers]
        if first_layer not in names:
            raise ConfigError("unfreeze", f"{backbone.name} has no layer named {first_layer!r}",
                              f"Pass a count, a fraction or one of its layer names, bottom to "
                              f"top: {', '.join(names)}.")
        count = len(layers) - names.index(first_layer)
    return UnfreezePlan(count, layers[len(layers) - count].name, len(layers))


def freeze(backbone: keras.Model) -> None:
    """Phase 1: the whole backbone is frozen."""
    backbone.trainable = False


def unfreeze_top(backbone: keras.Model, plan: UnfreezePlan) -> None:
    """Phase 2: unfreezes the planned top layers, keeping every BatchNormalization layer frozen."""
    backbone.trainable = True
    layers = backbone_layers(backbone)
    first_unfrozen = len(layers) - plan.count
    for index, layer in enumerate(layers):
        layer.trainable = index >= first_unfrozen
    for layer in _all_layers(backbone):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _all_layers(model):
    """Every layer, including those inside nested models."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
