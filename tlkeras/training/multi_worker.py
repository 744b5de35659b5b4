"""Training across machines on `tf.distribute.MultiWorkerMirroredStrategy`, with Keras' own fit.

Every worker runs the same command. The cluster comes from `TF_CONFIG` (or from Slurm's
variables under `srun`), as tf.distribute defines it. Global batch = --batch_size x replicas
of all workers; each global batch is split between the workers by tf.data's DATA auto-shard
(`tlkeras.data.pipeline_options`), so a two-worker run trains on the very batches a one-process
run with the same global batch trains on, and no example is seen twice per epoch.

Keras 3.15's `fit` and `evaluate` fail under this strategy in two places, both in
`keras/src/backend/tensorflow/trainer.py` (keras-team/keras#20585); `enable_keras_fit`
works around them:
- `_maybe_symbolic_build` averages the first batch across workers only to learn its shapes,
  with a nested structure that a collective reduce cannot take ("unsupported type
  PerReplica"). The dataset's element spec has the shapes: it is used instead, per model.
- `reduce_per_replica` reduces the step's scalar logs with `axis=0` ("Invalid reduction
  dimension 0 for input with 0 dimensions"). The wrapper reduces scalars with `axis=None`;
  every other case goes to Keras' own function. It is installed once, and only changes what
  happens under a multi-worker strategy.
They touch Keras' private trainer, so the Keras minor version is checked when the strategy is
made (another one gets a clear refusal; the `multi_worker` extra pins it), and
`tests/test_multi_worker.py` trains two real workers, so a Keras whose fit changes fails CI.
"""

import contextlib
import functools
import logging
import os
import re
import subprocess
import sys
import types
import zlib

import keras
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as keras_tf_trainer

from tlkeras.errors import ConfigError, WorkerLost

log = logging.getLogger(__name__)
TESTED_KERAS = "3.15"  # pyproject's multi_worker extra pins it.
# The errors TensorFlow raises in a collective when a peer died or restarted.
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.CancelledError,
               tf.errors.DeadlineExceededError, tf.errors.FailedPreconditionError,
               tf.errors.AbortedError)


def make_strategy(wait_seconds: int) -> tf.distribute.MultiWorkerMirroredStrategy:
    """The strategy for this worker; waits at most `wait_seconds` for every worker to join."""
    _check_keras()
    resolver = _cluster_resolver()
    workers = _addresses(resolver)
    log.info("Multi-worker: this is %s of %d worker(s) %s; waiting up to %d s for all to join.",
             _task_name(resolver), len(workers), workers, wait_seconds)
    # TensorFlow waits for every worker inside one C++ call that holds the interpreter (for up
    # to its coordination service's 60-minute cluster_register_timeout), so no Python thread or
    # signal handler of this process can stop it: a watchdog process does.
    with _watchdog(workers, wait_seconds):
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    keras_tf_trainer.reduce_per_replica = _reduce_scalars_without_axis
    return strategy


# The watchdog process: waits for its stdin to close (this process got its strategy, or died);
# after the timeout it names the workers that do not accept connections and kills this process
# (SIGKILL: nothing has been written yet, and TensorFlow ignores SIGTERM while it waits).
WATCHDOG = """
import os, select, signal, socket, sys
parent, seconds, workers = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
if select.select([sys.stdin], [], [], seconds)[0]:
    sys.exit(0)
def answers(worker):
    host, port = worker.split("(", 1)[1].rstrip(")").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        return True
    except OSError:
        return False
missing = [worker for worker in workers if not answers(worker)]
print(f"tlkeras: worker lost: not every worker joined within --worker_timeout={seconds} s: "
      f"{', '.join(missing) + ' did not answer' if missing else 'the cluster did not form'}. "
      "Start the same command on every worker of the cluster (each with its own task "
      "index), or raise --worker_timeout.", file=sys.stderr, flush=True)
os.kill(parent, signal.SIGKILL)
"""


@contextlib.contextmanager
def _watchdog(workers: list[str], wait_seconds: int):
    watchdog = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()),
                                 str(wait_seconds), *workers], stdin=subprocess.PIPE)
    try:
        yield
    finally:
        watchdog.stdin.close()
        watchdog.wait()


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's outputs: the chief, or worker 0 without a chief."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def task_name(strategy: tf.distribute.Strategy) -> str:
    return _task_name(strategy.cluster_resolver) if is_multi_worker(strategy) else "local"


def enable_keras_fit(model: keras.Model) -> None:
    """Lets `model.fit`/`evaluate` run under a multi-worker strategy (see the module doc)."""
    if not is_multi_worker(model.distribute_strategy):
        return
    model._maybe_symbolic_build = types.MethodType(_symbolic_build_from_spec, model)


def check_same_everywhere(strategy: tf.distribute.Strategy, value: str, what: str,
                          fix: str) -> None:
    """Stops every worker with a clear error unless all of them hold the same `value`.

    A collective all-gather of the value's checksum: all workers call it, so none waits alone.
    """
    if not is_multi_worker(strategy):
        return
    checksum = zlib.crc32(value.encode())
    gathered = strategy.gather(strategy.run(lambda: tf.constant([checksum], tf.int64)), axis=0)
    if len(set(gathered.numpy().tolist())) > 1:
        raise ConfigError("output_dir", f"the workers disagree on {what} ({task_name(strategy)} "
                          f"has {value!r})", fix)


@contextlib.contextmanager
def peers_watched(strategy: tf.distribute.Strategy):
    """Turns TensorFlow's error for a dead or restarted worker into `WorkerLost`.

    TensorFlow's coordination service aborts the collectives when a peer stops sending
    heartbeats, so a worker that died stops the others instead of leaving them waiting
    forever. The run stays resumable: nothing marks it failed.
    """
    try:
        yield
    except PEER_ERRORS as error:
        if not is_multi_worker(strategy):
            raise
        raise WorkerLost(
            f"{task_name(strategy)} lost {_lost_peer(strategy, str(error))}, and stopped. The "
            "run folder keeps its last finished epoch: start the same command again on every "
            "worker to resume.") from None


def _lost_peer(strategy: tf.distribute.Strategy, message: str) -> str:
    """`worker:1 (host:port)` if TensorFlow's error names the peer, else `another worker`."""
    found = re.search(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)", message)
    if not found:
        return "another worker"
    job, index = found[1], int(found[2])
    address = strategy.cluster_resolver.cluster_spec().task_address(job, index)
    return f"{job}:{index} ({address})"


def _symbolic_build_from_spec(self, iterator=None, data_batch=None):
    """Keras' `_maybe_symbolic_build`, from the dataset's element spec instead of a batch.

    Keras only needs shapes and dtypes here. Not drawing a batch also keeps the data order:
    drawing one starts an iteration of the dataset, and the epoch's own iteration then
    reshuffles, so the run would train on other batches than a one-process run.
    """
    if iterator is not None:
        data_batch = iterator.data_adapter.get_tf_dataset().element_spec
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)


_keras_reduce_per_replica = keras_tf_trainer.reduce_per_replica


@functools.wraps(_keras_reduce_per_replica)
def _reduce_scalars_without_axis(values, strategy, reduction):
    """Keras' `reduce_per_replica`, except that a multi-worker mean of a scalar log (the
    loss, a metric's result) reduces over no axis, which is what Keras asks of it."""
    if not (is_multi_worker(strategy) and reduction in ("auto", "mean")):
        return _keras_reduce_per_replica(values, strategy, reduction)

    def mean(value):
        return strategy.reduce("MEAN", value, axis=0 if value.shape.rank else None)

    return tf.nest.map_structure(mean, values)


def _check_keras() -> None:
    """Refuses a Keras other than the one the workarounds were written for and tested with."""
    found = ".".join(keras.__version__.split(".")[:2])
    if found != TESTED_KERAS or not hasattr(keras_tf_trainer, "reduce_per_replica"):
        raise ConfigError("strategy", f"multi_worker works around two defects of Keras "
                          f"{TESTED_KERAS}'s fit (keras-team/keras#20585) and is tested with "
                          f"that Keras only; found Keras {keras.__version__}",
                          f"Install tlkeras[multi_worker] (keras {TESTED_KERAS}.x), or use "
                          "--strategy=mirrored on one machine.")


def _cluster_resolver() -> tf.distribute.cluster_resolver.ClusterResolver:
    """TF_CONFIG's cluster, else Slurm's (under srun), else a clear refusal."""
    if os.environ.get("TF_CONFIG"):
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    elif os.environ.get("SLURM_PROCID") is not None:
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
    else:
        raise ConfigError("strategy", "multi_worker needs a cluster, and neither TF_CONFIG nor "
                          "Slurm's variables are set", "Set TF_CONFIG on every worker (see "
                          "the README's multi-worker section), or run under srun.")
    if not resolver.cluster_spec().as_dict() or resolver.task_type is None:
        raise ConfigError("strategy", "TF_CONFIG holds no cluster or no task for this process",
                          'Set TF_CONFIG to {"cluster": {"worker": [...]}, "task": {"type": '
                          '"worker", "index": i}} on worker i.')
    return resolver


def _addresses(resolver) -> list[str]:
    spec = resolver.cluster_spec().as_dict()
    return [f"{job}:{index} ({address})" for job in ("chief", "worker") if job in spec
            for index, address in enumerate(spec[job])]


def _task_name(resolver) -> str:
    return f"{resolver.task_type}:{resolver.task_id}"
