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
except for the first), so the estimate can only be too strict, never too lenient; an animated
WebP's by counting its "ANMF" frame-chunk tags the same way.
"""

import tensorflow as tf

PIXELS_PER_MEGAPIXEL = 1_000_000
UNKNOWN = -1  # claimed_pixels of a format it cannot measure: refused, never decoded.
_HEADER_BYTES = 26  # Enough for the width and height of every format below (WebP pads).


def max_pixels(max_image_megapixels: float) -> int:
    """--max_image_megapixels as a pixel count."""
    return int(max_image_megapixels * PIXELS_PER_MEGAPIXEL)


def decode_and_resize(encoded, height: int, width: int, pixel_budget: int):
    """One encoded image (JPEG, PNG, BMP, WebP, a GIF's first frame) -> float32 [H, W, 3]."""
    image = tf.image.resize(decode_within_budget(encoded, pixel_budget), (height, width))
    image.set_shape((height, width, 3))
    return image


def decode_within_budget(encoded, pixel_budget: int):
    """uint8 [H, W, 3], or InvalidArgumentError if the header claims more than the budget."""
    claimed = claimed_pixels(encoded)
    # TensorFlow's decoder reads more formats than these headers (JPEG XL in TF 2.21): one the
    # budget cannot measure is refused, so nothing reaches a decoder unmeasured.
    known = tf.debugging.assert_non_negative(
        claimed, message="Unknown image file format: tlkeras decodes JPEG, PNG, GIF, BMP and "
                         "WebP")
    with tf.control_dependencies([known]):
        within = tf.debugging.assert_less_equal(
            claimed, tf.constant(pixel_budget, tf.int64),
            message=f"image larger than the decode budget of {pixel_budget:,} pixels (width x "
                    "height x frames; --max_image_megapixels)")
    with tf.control_dependencies([within]):
        return tf.cond(
            _webp_with_alpha(encoded),  # TensorFlow 2.21 decodes these only as RGBA.
            lambda: tf.io.decode_image(encoded, channels=4, expand_animations=False)[:, :, :3],
            lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False))


def claimed_pixels(encoded) -> tf.Tensor:
    """Width x height (x frames for a GIF or WebP) from the header, int64; UNKNOWN (-1) if the
    format is not one of these or the file is too short to tell."""
    magic = tf.strings.substr(encoded, 0, 4)
    too_short = tf.strings.length(encoded) < _HEADER_BYTES
    return tf.case([
        (too_short, lambda: tf.constant(UNKNOWN, tf.int64)),
        (tf.equal(tf.strings.substr(encoded, 0, 2), b"\xff\xd8"), lambda: _jpeg(encoded)),
        (tf.equal(magic, b"\x89PNG"), lambda: _png(encoded)),
        (tf.equal(magic, b"GIF8"), lambda: _gif(encoded)),
        (tf.equal(tf.strings.substr(encoded, 0, 2), b"BM"), lambda: _bmp(encoded)),
        (tf.logical_and(tf.equal(magic, b"RIFF"),
                        tf.equal(tf.strings.substr(encoded, 8, 4), b"WEBP")),
         lambda: _webp(encoded)),
    ], default=lambda: tf.constant(UNKNOWN, tf.int64), exclusive=False)


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


def _webp(encoded):
    """The canvas from the first chunk (lossy VP8, lossless VP8L, extended VP8X) x the frames
    of an animation, bounded from above by counting "ANMF" (every frame chunk starts with it)."""
    header = _webp_header(encoded)
    sizes = {
        # VP8 frame header after the 3-byte tag and start code: 14-bit width, height.
        b"VP8 ": (_uint(header, 26, 2, little_endian=True) % 2**14) *
                 (_uint(header, 28, 2, little_endian=True) % 2**14),
        # After the 0x2F signature: 14 bits width - 1, then 14 bits height - 1.
        b"VP8L": (_uint(header, 21, 4, little_endian=True) % 2**14 + 1) *
                 (_uint(header, 21, 4, little_endian=True) // 2**14 % 2**14 + 1),
        # After 4 bytes of flags: 24 bits canvas width - 1, then 24 bits height - 1.
        b"VP8X": (_uint(header, 24, 3, little_endian=True) + 1) *
                 (_uint(header, 27, 3, little_endian=True) + 1),
    }
    chunk, pixels = tf.strings.substr(header, 12, 4), tf.constant(0, tf.int64)
    for kind, size in sizes.items():
        pixels = tf.where(tf.equal(chunk, kind), size, pixels)
    frames = tf.size(tf.strings.split(encoded, sep="ANMF"), out_type=tf.int64) - 1
    return pixels * tf.clip_by_value(frames, 1, 2**30)


def _webp_header(encoded):
    """The first 30 bytes, zero-padded: a truncated file reads zeros, and the decoder refuses it."""
    return tf.strings.substr(tf.strings.join([tf.strings.substr(encoded, 0, 30), b"\0" * 30]),
                             0, 30)


def _webp_with_alpha(encoded):
    """A still WebP with an alpha channel, which TensorFlow refuses to decode as RGB: lossless
    with its alpha-used bit, or extended with the alpha flag. An animation (which TensorFlow
    refuses as RGB and as RGBA) is left to the RGB decode, which refuses it cleanly."""
    header = _webp_header(encoded)
    chunk, flags = tf.strings.substr(header, 12, 4), _uint(header, 20, 1)
    alpha_used = _uint(header, 21, 4, little_endian=True) // 2**28 % 2  # After 28 size bits.
    lossless_alpha = tf.logical_and(tf.equal(chunk, b"VP8L"), tf.equal(alpha_used, 1))
    extended_alpha = tf.logical_and(tf.equal(chunk, b"VP8X"), tf.logical_and(
        tf.equal(flags // 16 % 2, 1), tf.equal(flags // 2 % 2, 0)))  # Alpha, no animation.
    return tf.logical_and(
        tf.logical_and(tf.equal(tf.strings.substr(header, 0, 4), b"RIFF"),
                       tf.equal(tf.strings.substr(header, 8, 4), b"WEBP")),
        tf.logical_or(lossless_alpha, extended_alpha))


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
