"""Activations computed once, in the main thread, and read back as a `tf.data` dataset.

Both caches use it: phase 1's pooled backbone features and phase 2's activations at the frozen
boundary (see `tlkeras.model.cut`). One pass over the split's batches, in order, calls a
compiled function on each batch (each worker on its share, under --strategy=multi_worker);
its outputs are kept in memory when they fit in
`--cache_memory_mb`, else written to a TFRecord file (one record per batch) and read back from
disk, and either way later epochs only read them.

Why not compute them lazily inside the first epoch (`Dataset.from_generator`, as tlkeras did
before): running TensorFlow from a Python generator inside tf.data left the process paging
memory in and out for the rest of its life. Measured here (MobileNetV2, 96 px, 2,250 images, 2
CPU cores): after a generator pass, every later phase-2 epoch took 2-3x as long, with 11.8
million minor page faults and 45 s of system time per 2 epochs against 0.25 million and 2.6 s
after the same pass made in the main thread; the pass itself took twice as long in the
generator. Computing up front costs the same single pass.
"""

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tlkeras import data
from tlkeras.training import multi_worker

log = logging.getLogger(__name__)
RECORDS_FILE = "examples.tfrecord"  # In a feature store entry, with META_FILE.
META_FILE = "meta.json"


@dataclasses.dataclass
class Activations:
    """A split's activations and labels, unbatched; where they live; how many batches ran."""

    examples: tf.data.Dataset  # Unbatched (activations, label); activations a tensor or tuple.
    size: int
    location: str  # "memory" or the TFRecord path.
    batches_computed: int  # Calls of the (backbone) function: 0 when read from a store.


def compute(function: Callable, batches: tf.data.Dataset, size: int | None, memory_mb: int,
            path: str, store_entry: str | None = None) -> Activations:
    """`function(images)` on every batch of `batches` ((images, labels), in order).

    `function` returns a tensor or a tuple of tensors per batch. They stay in memory when `size`
    examples fit in `memory_mb`, else go to a TFRecord file at `path`. With `store_entry` (a
    folder of `--feature_store`), they are read from there if present, else computed and kept
    there for later runs.
    """
    compiled = tf.function(function, input_signature=[
        tf.TensorSpec.from_spec(batches.element_spec[0])])
    outputs = compiled.get_concrete_function().structured_outputs  # Traced, not run.
    # One batch's (activations, labels) structure, for writing and reading records.
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype),
                                 (outputs, batches.element_spec[1]))
    bytes_each = sum(int(np.prod(t.shape[1:])) * 4 for t in tf.nest.flatten(outputs))
    fits = size is not None and data.fits_in_memory(size, bytes_each, memory_mb)
    if store_entry is not None:
        return _through_store(compiled, batches, spec, store_entry, fits)
    return _in_memory(compiled, batches) if fits else _on_disk(compiled, batches, spec, path)


def _through_store(compiled, batches, spec, entry: str, fits: bool) -> Activations:
    """Reads the store's entry, or computes it under a temporary name and renames it in."""
    computed = 0
    if not os.path.isdir(entry):
        partial = f"{entry}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        written = _on_disk(compiled, batches, spec, os.path.join(partial, RECORDS_FILE))
        with open(os.path.join(partial, META_FILE), "w") as file:
            json.dump({"size": written.size, "batches": written.batches_computed}, file)
        computed = written.batches_computed
        try:
            os.rename(partial, entry)
        except OSError:  # Another run stored the same entry first: theirs is as good.
            shutil.rmtree(partial, ignore_errors=True)
    with open(os.path.join(entry, META_FILE)) as file:
        size = json.load(file)["size"]
    examples = read_records(os.path.join(entry, RECORDS_FILE), spec)
    log.info("Activations %s feature store entry %s.",
             "written to" if computed else "read from", entry)
    return Activations(examples.cache() if fits else examples, size, entry, computed)


def _each_batch(compiled, batches):
    """(activations, labels) of every batch of `batches`, in order.

    Under a multi-worker strategy each worker computes its share of every batch (tf.data's
    DATA auto-shard splits it, as in training) and the shares are all-gathered in replica
    order, so every worker holds the whole split's activations, in order, for the price of its
    share of the pass, and trains on the same batches as a one-process run.
    """
    strategy = tf.distribute.get_strategy()
    if not multi_worker.is_multi_worker(strategy):
        for images, labels in batches:
            yield compiled(images), labels
        return

    @tf.function
    def share_and_gather(images, labels):
        # Through a Python function: `strategy.run` hands a tf.function with an input
        # signature the PerReplica value itself, which it cannot bind.
        share = strategy.run(lambda replica_images: compiled(replica_images), args=(images,))
        return tf.nest.map_structure(lambda t: strategy.gather(t, axis=0), (share, labels))

    for images, labels in strategy.experimental_distribute_dataset(batches):
        yield share_and_gather(images, labels)


def _in_memory(compiled, batches) -> Activations:
    parts, labels, count = [], [], 0
    for outputs, batch_labels in _each_batch(compiled, batches):
        parts.append(tf.nest.map_structure(lambda t: t.numpy(), outputs))
        labels.append(batch_labels.numpy())
        count += 1
    activations = tf.nest.map_structure(lambda *arrays: np.concatenate(arrays), *parts)
    examples = tf.data.Dataset.from_tensor_slices((activations, np.concatenate(labels)))
    return Activations(examples, len(examples), "memory", count)


def _on_disk(compiled, batches, spec, path: str) -> Activations:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    count, size = 0, 0
    with tf.io.TFRecordWriter(path) as writer:
        for outputs, batch_labels in _each_batch(compiled, batches):
            writer.write(_serialize((outputs, batch_labels)))
            count, size = count + 1, size + int(batch_labels.shape[0])
    return Activations(read_records(path, spec), size, path, count)


def _serialize(element) -> bytes:
    tensors = tf.nest.flatten(element)
    feature = {str(i): tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[tf.io.serialize_tensor(t).numpy()])) for i, t in enumerate(tensors)}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def read_records(path: str, spec) -> tf.data.Dataset:
    """Unbatched examples from a file `_on_disk` wrote; `spec` is one batch's structure."""
    flat = tf.nest.flatten(spec)
    description = {str(i): tf.io.FixedLenFeature([], tf.string) for i in range(len(flat))}

    def parse(record):
        parsed = tf.io.parse_single_example(record, description)
        tensors = [tf.ensure_shape(tf.io.parse_tensor(parsed[str(i)], s.dtype), s.shape)
                   for i, s in enumerate(flat)]
        return tf.nest.pack_sequence_as(spec, tensors)

    return tf.data.TFRecordDataset(path).map(parse, num_parallel_calls=tf.data.AUTOTUNE) \
        .unbatch()
