"""Activations kept across runs (`--feature_store=DIR`), under a key of all they depend on.

Tuning reruns one command with another head learning rate, dropout or number of epochs; the
frozen backbone's activations for the same images are then the same, and the store hands them
back instead of a backbone pass. An entry's key hashes: the backbone, the weights (a file's
SHA-256, or `imagenet` with the Keras version, or `none` with the seed that initialised it),
the image size, the precision policy, what is cached (pooled features, or the frozen boundary's
layer names), and the split's fingerprint (its files in order with sizes, modification times and
labels; or the TFDS dataset, version and split). Anything that changes gives a new key, never a
stale hit. Entries are written to a temporary folder and renamed into place, so concurrent runs
never read a half-written entry (the first rename wins; the other run's copy is dropped).
"""

import functools
import hashlib
import json
import os

import keras

STORE_FORMAT = 1  # Bumped whenever what an entry holds changes.


def entry_dir(store: str, config, image_size: int, part_description: str,
              split_fingerprint: str) -> str:
    """The folder of one split's activations in the store."""
    key = {"format": STORE_FORMAT, "backbone": config.model.backbone,
           "weights": weights_identity(config.model.weights, config.runtime.seed),
           "image_size": image_size,
           "precision": keras.mixed_precision.global_policy().name,
           "what": part_description, "split": split_fingerprint}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return os.path.join(store, digest)


def weights_identity(weights: str, seed: int) -> str:
    if weights.lower() == "none":
        return f"none:seed={seed}"
    if weights == "imagenet":
        return f"imagenet:keras={keras.__version__}"
    return f"file:{_file_sha256(os.path.abspath(weights), os.path.getmtime(weights))}"


@functools.cache
def _file_sha256(path: str, mtime: float) -> str:
    del mtime  # Part of the cache key only: a rewritten file is hashed again.
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
