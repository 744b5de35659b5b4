"""Which backbone layers phase 2 unfreezes, and the freezing itself.

Layers are counted in `backbone.layers` order (input layer excluded), as in the keras.io guide's
`fine_tune_at`. BatchNormalization layers stay frozen even inside the unfrozen top: in Keras 3 a
frozen BN layer runs in inference mode, so its moving statistics keep the values learnt on the
large pretraining set instead of being overwritten by small fine-tuning batches (see
keras-team/keras#20285 for why `training=False` at build time alone is not enough).
"""

import dataclasses

import keras

from tlkeras.config import DEFAULT_UNFREEZE_FRACTION, Config
from tlkeras.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class UnfreezePlan:
    """Phase 2's choice: the top `count` of the backbone's layers, from `first_layer` up."""

    count: int
    first_layer: str
    total_layers: int


def backbone_layers(backbone: keras.Model) -> list:
    return [layer for layer in backbone.layers if not isinstance(layer, keras.layers.InputLayer)]


def plan_unfreeze(backbone: keras.Model, config: Config) -> UnfreezePlan:
    """Resolves --unfreeze_layers / --unfreeze_from / --unfreeze_fraction against the backbone.

    Called before phase 1, so a bad value fails before any training time is spent.
    """
    layers = backbone_layers(backbone)
    if config.unfreeze_layers is not None:
        count = config.unfreeze_layers
        if count > len(layers):
            raise ConfigError("unfreeze_layers", f"{count} is more than the {len(layers)} layers "
                              f"of {backbone.name}", f"Pass a value from 1 to {len(layers)}, or "
                              "--unfreeze_fraction=1 to unfreeze the whole backbone.")
    elif config.unfreeze_from is not None:
        names = [layer.name for layer in layers]
        if config.unfreeze_from not in names:
            raise ConfigError("unfreeze_from", f"{backbone.name} has no layer named "
                              f"{config.unfreeze_from!r}", f"Layer names, bottom to top: "
                              f"{', '.join(names)}.")
        count = len(layers) - names.index(config.unfreeze_from)
    else:
        fraction = config.unfreeze_fraction or DEFAULT_UNFREEZE_FRACTION
        count = max(1, round(fraction * len(layers)))
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
