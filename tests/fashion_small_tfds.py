"""A real TFDS dataset for tests, prepared offline from a folder of the committed images."""

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from helpers import FASHION_MINI


class FashionMnistSmall(tfds.core.GeneratorBasedBuilder):
    """A real TFDS dataset, prepared offline from the committed images (see `small_image_dir`).

    Defining the class registers it by name (`fashion_mnist_small`), so tlkeras reaches it
    through `tfds.builder(name)` exactly as it reaches `cifar10` on a machine with network.
    """

    VERSION = tfds.core.Version("1.0.0")
    source_dir = None  # Set by the test before preparing.

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(28, 28, 1)),
                "label": tfds.features.ClassLabel(
                    names=sorted(p.name for p in (FASHION_MINI / "train").iterdir()))}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(self.source_dir / split)
                for split in ("train", "test")}

    def _generate_examples(self, split_dir):
        for image in sorted(split_dir.glob("*/*.png")):
            yield f"{image.parent.name}/{image.name}", {"image": image,
                                                        "label": image.parent.name}


class FashionBrightnessSmall(FashionMnistSmall):
    """The same real images with a numeric label: each image's mean grey value (0-255).

    Registered as `fashion_brightness_small`: the TFDS path of --task=regression.
    """

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(28, 28, 1)),
                "brightness": tfds.features.Scalar(dtype=np.float32)}),
            supervised_keys=("image", "brightness"))

    def _generate_examples(self, split_dir):
        for image in sorted(split_dir.glob("*/*.png")):
            brightness = np.asarray(Image.open(image).convert("L"), np.float32).mean()
            yield f"{image.parent.name}/{image.name}", {"image": image, "brightness": brightness}
