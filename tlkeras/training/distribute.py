"""tf.distribute strategies by flag: TensorFlow's own engine, nothing home-made.

`--strategy=default` (one device), `mirrored` (all local GPUs, or `--devices`),
`multi_worker` (`MultiWorkerMirroredStrategy` from TF_CONFIG or Slurm, see
`tlkeras.training.multi_worker`), `tpu` (`TPUStrategy` on `--tpu`). The model, its optimizers and
both phases are built inside `strategy.scope()`; Keras splits every global batch across the
replicas.
"""

import tensorflow as tf

from tlkeras.config import RuntimeConfig
from tlkeras.errors import ConfigError
from tlkeras.training import multi_worker


def make_strategy(runtime: RuntimeConfig) -> tf.distribute.Strategy:
    """The strategy `--strategy` names; create it before other TensorFlow work (TPU needs that)."""
    if runtime.strategy == "default":
        return tf.distribute.get_strategy()
    if runtime.strategy == "mirrored":
        _check_devices(runtime.devices)
        return tf.distribute.MirroredStrategy(devices=list(runtime.devices) or None)
    if runtime.strategy == "multi_worker":
        return multi_worker.make_strategy(runtime.worker_timeout)
    if not runtime.tpu:
        # TPUClusterResolver(tpu="") would look for a TPU on Google Cloud's metadata server and
        # fail there with a traceback.
        raise ConfigError("tpu", "--strategy=tpu needs the TPU to connect to, and no --tpu was "
                          f"given (this machine's devices: {_local_devices()})", "Pass --tpu=<TPU "
                          "name or grpc:// address> (--tpu=local on a Cloud TPU VM), or another "
                          "--strategy.")
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=runtime.tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _check_devices(devices: tuple[str, ...]) -> None:
    """Every --devices entry must exist here: MirroredStrategy would otherwise place the replica
    of a missing device (/gpu:7) on the CPU without a word, and train on one CPU."""
    available = {_short_name(device.name) for device in tf.config.list_logical_devices()}
    missing = [device for device in devices if _short_name(device) not in available]
    if missing:
        raise ConfigError("devices", f"no device {', '.join(missing)} on this machine; it has "
                          f"{_local_devices()}", "Pass --devices from that list (e.g. "
                          "--devices=/gpu:0,/gpu:1), or leave --devices empty to use every "
                          "local GPU (else the CPU).")


def _local_devices() -> str:
    return ", ".join(_short_name(device.name) for device in tf.config.list_logical_devices())


def _short_name(name: str) -> str | None:
    """`/gpu:0` for `/job:localhost/replica:0/task:0/device:GPU:0`, `GPU:0` or `/gpu:0`; None
    for what is not a device name."""
    try:
        spec = tf.DeviceSpec.from_string(name.strip())
    except ValueError:
        return None
    if spec.device_type is None or spec.device_index is None:
        return None
    return f"/{spec.device_type.lower()}:{spec.device_index}"
