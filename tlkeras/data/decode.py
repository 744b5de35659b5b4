"""Decoding one encoded image within a pixel budget: the same ops in training and serving.

`tf.io.decode_image(channels=3)` turns greyscale into RGB and drops an alpha channel. Bilinear
`tf.image.resize` to the model's size, float32 0-255 out. Sharing this function is what makes
served predictions match the trained model's on the same file.

Why a budget: a decoder allocates what the file's header claims. A 388 KB PNG can claim
20000x20000 pixels (1.2 GB decoded), a 786 KB GIF 200 full frames, and TensorFlow's GIF decoder
decodes every frame even when only the first is kept. So the header's width x height x frames
is read first, in the graph, and an image over the budget fails with `InvalidArgumentError`
before any decoding: training skips and lists the file like an undecodable one, the SavedModel
fails that request as it fails any non-image. A GIF's frames are bounded from above by counting
its image-descriptor markers (an image descriptor, 0x2C, always follows a block terminator, 0x00,
except for the first), so the estimate can only be too strict, never too lenient.
"""

import tensorflow as tf

PIXELS_PER_MEGAPIXEL = 1_000_000
_HEADER_BYTES = 26  # Enough for the width and height of every format below.


def max_pixels(max_image_megapixels: float) -> int:
    """--max_image_megapixels as a pixel count."""
    return int(max_image_megapixels * PIXELS_PER_MEGAPIXEL)


def decode_and_resize(encoded, height: int, width: int, pixel_budget: int):
    """One encoded image (JPEG, PNG, GIF's first frame, BMP) -> float32 [height, width, 3]."""
    image = tf.image.resize(decode_within_budget(encoded, pixel_budget), (height, width))
    image.set_shape((height, width, 3))
    return image


def decode_within_budget(encoded, pixel_budget: int):
    """uint8 [H, W, 3], or InvalidArgumentError if the header claims more than the budget."""
    claimed = claimed_pixels(encoded)
    within = tf.debugging.assert_less_equal(
        claimed, tf.constant(pixel_budget, tf.int64),
        message=f"image larger than the decode budget of {pixel_budget:,} pixels (width x "
                "height x frames; --max_image_megapixels)")
    with tf.control_dependencies([within]):
        return tf.io.decode_image(encoded, channels=3, expand_animations=False)


def claimed_pixels(encoded) -> tf.Tensor:
    """Width x height (x frames for a GIF) from the header, int64; 0 if the format is unknown
    or the file is too short to tell (the decoder then refuses it)."""
    magic = tf.strings.substr(encoded, 0, 4)
    too_short = tf.strings.length(encoded) < _HEADER_BYTES
    return tf.case([
        (too_short, lambda: tf.constant(0, tf.int64)),
        (tf.equal(tf.strings.substr(encoded, 0, 2), b"\xff\xd8"), lambda: _jpeg(encoded)),
        (tf.equal(magic, b"\x89PNG"), lambda: _png(encoded)),
        (tf.equal(magic, b"GIF8"), lambda: _gif(encoded)),
        (tf.equal(tf.strings.substr(encoded, 0, 2), b"BM"), lambda: _bmp(encoded)),
    ], default=lambda: tf.constant(0, tf.int64), exclusive=False)


def _jpeg(encoded):
    shape = tf.cast(tf.io.extract_jpeg_shape(encoded), tf.int64)
    return shape[0] * shape[1]


def _png(encoded):
    # The spec bounds each side by 2**31 - 1; capping keeps a forged header from overflowing.
    return tf.minimum(_uint(encoded, 16, 4), 2**31) * tf.minimum(_uint(encoded, 20, 4), 2**31)


def _gif(encoded):
    width = _uint(encoded, 6, 2, little_endian=True)
    height = _uint(encoded, 8, 2, little_endian=True)
    markers = tf.size(tf.strings.split(encoded, sep="\x00\x2c"), out_type=tf.int64) - 1
    return width * height * tf.minimum(markers + 1, 2**30)


def _bmp(encoded):
    width = _int32_little_endian(encoded, 18)
    height = _int32_little_endian(encoded, 22)  # Negative for a top-down bitmap.
    return tf.abs(width) * tf.abs(height)


def _int32_little_endian(encoded, offset: int):
    value = _uint(encoded, offset, 4, little_endian=True)
    return tf.where(value >= 2**31, value - 2**32, value)


def _uint(encoded, offset: int, length: int, little_endian: bool = False):
    """The unsigned integer in bytes [offset, offset + length) of the header."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, offset, length), tf.uint8),
                  tf.int64)
    weights = [256**i for i in range(length)]
    return tf.reduce_sum(raw * tf.constant(weights if little_endian else weights[::-1],
                                           tf.int64))
