"""The frozen boundary of a partly unfrozen backbone, for families with residual and concat
paths: the two halves compose to the backbone, and every trainable weight is above the cut."""

import keras
import numpy as np
import pytest

from tlkeras.model import cut, finetune


@pytest.mark.parametrize("name, size, unfreeze, expected", [
    ("MobileNetV2", 96, "40", ["block_12_add"]),  # The quickstart's cut: one residual sum.
    ("ResNet50", 64, "0.3", ["conv4_block4_out"]),
    ("DenseNet121", 64, "0.2", ["conv5_block5_0_relu", "conv5_block4_concat"]),  # Two tensors.
    ("ConvNeXtTiny", 64, "0.3", None),  # keras.ops additions (not layers) in the graph.
    ("InceptionV3", 96, "0.3", None),  # Four parallel branches cross the cut.
])
def test_halves_compose_to_the_backbone(name, size, unfreeze, expected):
    backbone = getattr(keras.applications, name)(input_shape=(size, size, 3),
                                                  include_top=False, weights=None)
    finetune.unfreeze_top(backbone, finetune.plan_unfreeze(backbone, unfreeze))
    boundary = cut.frozen_boundary(backbone)
    if expected is not None:
        assert cut.boundary_names(boundary) == expected
    bottom, top = cut.split_at(backbone, boundary)
    assert not bottom.trainable_weights
    assert {id(w) for w in top.trainable_weights} == {id(w) for w in backbone.trainable_weights}
    images = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    middle = bottom(images, training=False)
    # The same layers on the same tensors, run in two calls instead of one: equal to the bit
    # here; float32 reordering at the outputs' scale is what another CPU may add.
    np.testing.assert_allclose(top(middle, training=False), backbone(images, training=False),
                               rtol=0, atol=1e-4 * float(np.abs(backbone(images)).max()))


def test_nothing_to_cut_when_the_whole_backbone_is_frozen():
    backbone = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False,
                                              weights=None)
    finetune.freeze(backbone)
    assert cut.frozen_boundary(backbone) == []
