"""tf.distribute: mirrored over two logical CPUs trains to the same weights as one device."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from helpers import REPO, assert_close_at_scale

# Logical devices must be configured before TensorFlow starts, so this runs in its own process:
# the same short run once per strategy. Deterministic means: no dropout, and no random op in the
# input pipeline (a TFDS dataset read in order, --shuffle_buffer=1): once tf.data rewrites a
# distributed pipeline, seeded shuffles need not repeat the one-device order (seen here with the
# image-folder reader). Plain SGD, because Adam
# divides by the root of tiny second moments and so magnifies harmless float rounding
# differences (sum order of the all-reduce) into learning-rate-sized steps.
SCRIPT = textwrap.dedent("""
    import logging, sys
    import tensorflow as tf
    logging.basicConfig()
    logging.getLogger("tlkeras").setLevel(logging.INFO)
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
    from fashion_small_tfds import FashionMnistSmall
    from tlkeras.config import Config
    from tlkeras.training import workflow
    image_dir, weights, output_dir, data_dir = sys.argv[2:6]
    FashionMnistSmall.source_dir = __import__("pathlib").Path(image_dir)
    for strategy, devices, batch in (("default", (), 16), ("mirrored", ("/cpu:0", "/cpu:1"), 8)):
        config = Config.of(dataset="fashion_mnist_small", data_dir=data_dir, shuffle_buffer=1,
                           weights=weights, image_size=32, batch_size=batch,
                           epochs=2, fine_tune_epochs=1, unfreeze="10", dropout=0.0,
                           optimizer="sgd", learning_rate=0.01, fine_tune_optimizer="sgd",
                           fine_tune_learning_rate=0.001, output_dir=output_dir,
                           run_name=strategy, strategy=strategy, devices=devices,
                           export_model="last")  # The training's weights are compared.
        workflow.train_and_evaluate(config)
    print("DONE")
""")


pytestmark = pytest.mark.slow  # Minutes of subprocess training: the slow tier.


@pytest.fixture(scope="module")
def two_runs(small_image_dir, weights_path, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("strategies")
    process = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(REPO), str(small_image_dir), str(weights_path),
         str(output_dir), str(tmp_path_factory.mktemp("tfds"))], capture_output=True, text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert process.returncode == 0 and "DONE" in process.stdout, process.stderr[-5000:]
    return output_dir, process


def test_mirrored_uses_two_replicas_with_the_same_global_batch(two_runs):
    _, process = two_runs
    assert "Strategy default: 1 replica(s), global batch 16." in process.stderr
    assert "Strategy mirrored: 2 replica(s), global batch 16." in process.stderr


def test_mirrored_gives_the_same_final_weights_as_one_device(two_runs):
    import keras
    import numpy as np

    import tlkeras.model.backbones  # noqa: F401  (registers BackbonePreprocessing)

    output_dir, _ = two_runs
    default = keras.models.load_model(output_dir / "default" / "model.keras")
    mirrored = keras.models.load_model(output_dir / "mirrored" / "model.keras")
    for a, b in zip(default.weights, mirrored.weights, strict=True):
        # Only the all-reduce's float32 summation order differs, so each weight agrees up to
        # FLOAT32_REORDERED of its variable's largest magnitude (kernels, biases: other scales).
        assert_close_at_scale(np.asarray(b), np.asarray(a), err_msg=a.path)
    metrics = [json.loads((output_dir / name / "metrics.json").read_text())
               for name in ("default", "mirrored")]
    for run in metrics:  # Both trained: two changed models are being compared.
        assert run["phase1"]["history"]["loss"][-1] < run["phase1"]["history"]["loss"][0]
        assert (output_dir / run["config"]["run_name"] / "export" / "1" / "saved_model.pb") \
            .is_file()
