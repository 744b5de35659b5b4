"""Decoding and resizing one encoded image: the same ops in training and in the SavedModel.

`tf.io.decode_image(channels=3)` turns greyscale into RGB and drops an alpha channel; GIFs give
their first frame. Bilinear `tf.image.resize` to the model's size, float32 0-255 out. Sharing
this function is what makes served predictions match the trained model's on the same file.
"""

import tensorflow as tf


def decode_and_resize(encoded, height: int, width: int):
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.resize(image, (height, width))
    image.set_shape((height, width, 3))
    return image
