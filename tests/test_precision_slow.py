"""--mixed_precision and --jit_compile train as well as float32 (`pytest -m slow`, ~4 minutes)."""

import json

import pytest

from helpers import QUICKSTART, run_tlkeras

# Short runs on the committed images; test accuracy is measured on 500 images, so two runs that
# differ only in numerics should land within a few points of each other: at accuracy ~0.85 a
# 500-image estimate deviates by sqrt(0.85 * 0.15 / 500) = 0.016; both runs see the same images,
# so numerics alone move it less, and 0.05 (~3 deviations) flags a real loss of accuracy.
SHORT_RUN = ("--image_size=64", "--epochs=3", "--fine_tune_epochs=1")
TOLERANCE = 0.05


def short_run_accuracy(tmp_path, weights_path, name, *flags) -> float:
    process = run_tlkeras(f"--flagfile={QUICKSTART}", f"--weights={weights_path}",
                          f"--output_dir={tmp_path}", f"--run_name={name}", *SHORT_RUN, *flags)
    assert process.returncode == 0, process.stderr[-5000:]
    metrics = json.loads((tmp_path / name / "metrics.json").read_text())
    return metrics["phase2"]["test"]["accuracy"]


@pytest.fixture(scope="module")
def float32_accuracy(tmp_path_factory, weights_path):
    return short_run_accuracy(tmp_path_factory.mktemp("float32"), weights_path, "float32")


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--mixed_precision", "--jit_compile=true"])
def test_trains_within_noise_of_float32(tmp_path, weights_path, float32_accuracy, flag):
    accuracy = short_run_accuracy(tmp_path, weights_path, "variant", flag)
    assert float32_accuracy > 0.7
    assert abs(accuracy - float32_accuracy) <= TOLERANCE, (flag, accuracy, float32_accuracy)
