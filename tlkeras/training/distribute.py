"""tf.distribute strategies by flag: TensorFlow's own engine, nothing home-made.

`--strategy=default` (one device), `mirrored` (all local GPUs, or `--devices`),
`multi_worker` (`MultiWorkerMirroredStrategy` from TF_CONFIG or Slurm, see
`tlkeras.training.multi_worker`), `tpu` (`TPUStrategy` on `--tpu`). The model, its optimizers and
both phases are built inside `strategy.scope()`; Keras splits every global batch across the
replicas.
"""

import tensorflow as tf

from tlkeras.config import RuntimeConfig
from tlkeras.training import multi_worker


def make_strategy(runtime: RuntimeConfig) -> tf.distribute.Strategy:
    """The strategy `--strategy` names; create it before other TensorFlow work (TPU needs that)."""
    if runtime.strategy == "default":
        return tf.distribute.get_strategy()
    if runtime.strategy == "mirrored":
        return tf.distribute.MirroredStrategy(devices=list(runtime.devices) or None)
    if runtime.strategy == "multi_worker":
        return multi_worker.make_strategy(runtime.worker_timeout)
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=runtime.tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
