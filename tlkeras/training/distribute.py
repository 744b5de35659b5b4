"""tf.distribute strategies by flag: TensorFlow's own engine, nothing home-made.

`--strategy=default` (one device), `mirrored` (all local GPUs, or `--devices`),
`multi_worker` (refused for now: Keras 3 cannot fit under `MultiWorkerMirroredStrategy`,
keras-team/keras#20585), `tpu` (`TPUStrategy` on `--tpu`). The model, its optimizers and
both phases are built inside `strategy.scope()`; Keras splits every global batch across the
replicas.
"""

import tensorflow as tf

from tlkeras.config import RuntimeConfig
from tlkeras.errors import ConfigError


def make_strategy(runtime: RuntimeConfig) -> tf.distribute.Strategy:
    """The strategy `--strategy` names; create it before other TensorFlow work (TPU needs that)."""
    if runtime.strategy == "default":
        return tf.distribute.get_strategy()
    if runtime.strategy == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(runtime.devices) or None)
    if runtime.strategy == "multi_worker":
        # Tried here with two workers on 127.0.0.1: Keras 3's model.fit fails under this
        # strategy ("unsupported type PerReplica"), as TensorFlow's own multi-worker tutorial
        # does (keras-team/keras#20585, open). A clear error beats a crash after set-up.
        raise ConfigError("strategy", "multi_worker is not usable yet: Keras 3's model.fit "
                          "does not run under tf.distribute.MultiWorkerMirroredStrategy "
                          "(keras-team/keras#20585)", "Use --strategy=mirrored for all GPUs of "
                          "one machine.")
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=runtime.tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
