"""Decompression bombs never reach the decoder; the serving graph refuses bad pixel tensors."""

import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from helpers import FASHION_MINI
from tlkeras.data import decode

BOMB_SIDE = 20_000  # 400 million pixels: 1.2 GB as decoded RGB, ~400 KB as a PNG of zeros.
GIF_FRAMES, GIF_SIDE = 200, 1_000  # 200 million pixels over its frames.
# Serving the bombs may grow the server's peak memory by at most this much; decoding one would
# take 1,200 MB (the PNG) or 600 MB (the GIF's frames).
SERVING_GROWTH_BOUND_MB = 200


def png_bomb(path, side: int) -> None:
    """A real greyscale PNG of side x side zeros, compressed as it is written."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    compressor, rows = zlib.compressobj(9), b"\0" * (side + 1) * 1000  # Filter byte + row.
    data = b"".join(compressor.compress(rows) for _ in range(side // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale.
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) +
                     chunk(b"IEND", b""))


def animated_gif(path, frames: int, side: int) -> None:
    images = [Image.new("L", (side, side), color=i % 256) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=10)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    png_bomb(folder / "bomb.png", BOMB_SIDE)
    animated_gif(folder / "frames.gif", GIF_FRAMES, GIF_SIDE)
    return folder / "bomb.png", folder / "frames.gif"


def test_header_claims_are_the_decoded_sizes(tmp_path):
    photo = Image.open(next((FASHION_MINI / "train" / "Bag").iterdir())).convert("RGB")
    photo = photo.resize((45, 30))
    for fmt in ("PNG", "JPEG", "BMP", "GIF", "WEBP"):
        photo.save(tmp_path / f"photo.{fmt.lower()}", fmt)  # WebP: lossy, a VP8 chunk.
    photo.save(tmp_path / "lossless.webp", "WEBP", lossless=True)  # A VP8L chunk.
    transparent = photo.convert("RGBA")
    transparent.putpixel((0, 0), (0, 0, 0, 0))
    transparent.save(tmp_path / "alpha.webp", "WEBP")  # Alpha: a VP8X chunk first.
    transparent.save(tmp_path / "alpha_lossless.webp", "WEBP", lossless=True)  # VP8L, alpha.
    animated_gif(tmp_path / "three.gif", 3, 20)
    for name, frames in [("photo.png", 1), ("photo.jpeg", 1), ("photo.bmp", 1),
                         ("photo.gif", 1), ("three.gif", 3), ("photo.webp", 1),
                         ("lossless.webp", 1), ("alpha.webp", 1), ("alpha_lossless.webp", 1)]:
        encoded = (tmp_path / name).read_bytes()
        # TensorFlow 2.21 decodes a WebP with alpha only as RGBA: the budgeted decode drops it.
        decoded = (decode.decode_within_budget(tf.constant(encoded), 10**6)
                   if name.endswith(".webp") else
                   tf.io.decode_image(encoded, channels=3, expand_animations=True))
        height, width = decoded.shape[-3:-1]
        assert (height, width) == ((20, 20) if frames == 3 else (30, 45)), name
        claimed = int(decode.claimed_pixels(tf.constant(encoded)))
        # A GIF's and a WebP's frame counts are upper bounds (they count possible markers).
        assert height * width * frames <= claimed <= height * width * (frames + 2), name
    assert int(decode.claimed_pixels(tf.constant(b"not an image"))) == decode.UNKNOWN
    # An animated WebP: its frames count, and TensorFlow 2.21 refuses to decode it as RGB.
    reds = [Image.new("RGB", (20, 20), color=(80 * i, 0, 0)) for i in range(3)]
    reds[0].save(tmp_path / "three.webp", "WEBP", save_all=True, append_images=reds[1:],
                 duration=10)  # VP8X, then one ANMF chunk per frame.
    encoded = tf.constant((tmp_path / "three.webp").read_bytes())
    assert 20 * 20 * 3 <= int(decode.claimed_pixels(encoded)) <= 20 * 20 * 5
    with pytest.raises(tf.errors.InvalidArgumentError, match="WebP Animation"):
        decode.decode_within_budget(encoded, 10**6)


def test_an_image_over_the_budget_fails_before_it_is_decoded(bombs):
    bomb, gif = bombs
    assert int(decode.claimed_pixels(tf.constant(bomb.read_bytes()))) == BOMB_SIDE**2
    for path in bombs:
        with pytest.raises(tf.errors.InvalidArgumentError, match="decode budget"):
            decode.decode_within_budget(tf.constant(path.read_bytes()), decode.max_pixels(64))
    # Within a budget that allows it, the same GIF decodes (its first frame).
    image = decode.decode_within_budget(tf.constant(gif.read_bytes()), 10**9)
    assert image.shape == (GIF_SIDE, GIF_SIDE, 3)


SERVE_BOMBS = textwrap.dedent("""
    import json, resource, sys
    import tensorflow as tf
    export, photo, bomb, gif = sys.argv[1:]
    serve = tf.saved_model.load(export).signatures["serving_default"]
    read = lambda path: open(path, "rb").read()
    serve(image_bytes=tf.constant([read(photo)]))
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    before, errors = peak(), []
    for request in ([read(bomb)] * 16, [read(gif)], [read(photo), read(bomb)]):
        try:
            serve(image_bytes=tf.constant(request))
            errors.append(None)
        except tf.errors.InvalidArgumentError as error:
            errors.append(error.message)
    print(json.dumps({"grew_mb": peak() - before, "errors": errors}))
""")


def test_serving_refuses_bombs_within_a_memory_bound(trained_run, bombs):
    # The reproduction: 16 such PNGs in one 6 MB request cost 3.0 GB and 43 s.
    _, run_dir = trained_run
    photo = next((FASHION_MINI / "test" / "Bag").iterdir())
    process = subprocess.run([sys.executable, "-c", SERVE_BOMBS, str(run_dir / "export" / "1"),
                              str(photo), *map(str, bombs)], capture_output=True, text=True,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    result = json.loads(process.stdout.strip().splitlines()[-1])
    assert all(error and "decode budget" in error for error in result["errors"]), result
    assert result["grew_mb"] < SERVING_GROWTH_BOUND_MB, result


def test_serving_pixels_refuses_another_size_and_non_finite_pixels(trained_run):
    _, run_dir = trained_run
    serve = tf.saved_model.load(str(run_dir / "export" / "1")).signatures["serving_pixels"]
    size = json.loads((run_dir / "metrics.json").read_text())["image_size"]
    good = np.full((1, size, size, 3), 128, np.float32)
    assert serve(image=tf.constant(good))["probabilities"].shape == (1, 10)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"\\[N, {size}, {size}, 3\\]"):
        serve(image=tf.constant(np.full((1, 2 * size, 2 * size, 3), 128, np.float32)))
    good[0, 3, 4, 1] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite"):
        serve(image=tf.constant(good))


def test_training_skips_and_lists_an_image_over_the_budget(tmp_path):
    from tlkeras import data
    from tlkeras.config import Config
    from tlkeras.data.sources import LABEL_CLASSES

    for name in ("Bag", "Coat"):
        (tmp_path / "train" / name).mkdir(parents=True)
        for image in sorted((FASHION_MINI / "train" / name).iterdir())[:4]:  # 28 x 28 each.
            (tmp_path / "train" / name / image.name).write_bytes(image.read_bytes())
    large = tmp_path / "train" / "Bag" / "large.png"
    Image.new("RGB", (100, 100)).save(large)
    # A budget of 5,000 pixels: 28 x 28 = 784 passes, 100 x 100 = 10,000 does not.
    config = Config.of(image_dir=str(tmp_path), test_split="", max_image_megapixels=0.005)
    splits = data.load(config.data, LABEL_CLASSES, config.runtime.seed, 32)
    assert splits.skipped_files == [str(large)]
    assert splits.sizes["train"] + splits.sizes["validation"] == 8
