"""tf.distribute strategies by flag: TensorFlow's own engine, nothing home-made.

`--strategy=default` (one device), `mirrored` (all local GPUs, or `--devices`),
`multi_worker` (`MultiWorkerMirroredStrategy`, cluster from the standard `TF_CONFIG`), `tpu`
(`TPUStrategy` on `--tpu`). The model, its optimizers and both phases are built inside
`strategy.scope()`; Keras then splits every global batch across the replicas.
"""

import json
import os

import tensorflow as tf

from tlkeras.config import Config
from tlkeras.errors import ConfigError


def make_strategy(config: Config) -> tf.distribute.Strategy:
    """The strategy `--strategy` names. Create it first: multi-worker needs that."""
    if config.strategy == "default":
        return tf.distribute.get_strategy()
    if config.strategy == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(config.devices) or None)
    if config.strategy == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("strategy", "multi_worker needs the cluster in the TF_CONFIG "
                              "environment variable", "Set TF_CONFIG on every worker (see the "
                              "README's multi-worker section), or use --strategy=mirrored.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=config.tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief() -> bool:
    """True unless TF_CONFIG names this process a non-chief worker (they write no outputs)."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if task.get("type") in (None, "chief"):
        return True
    return task.get("type") == "worker" and task.get("index") == 0 and "chief" not in cluster
