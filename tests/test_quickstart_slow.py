"""The full offline quickstart (configs/quickstart.cfg, 10 epochs): `pytest -m slow`, ~2 minutes."""

import json

import pytest

from conftest import QUICKSTART, run_tlkeras


@pytest.mark.slow
def test_quickstart_reaches_a_strong_classifier_and_fine_tuning_does_not_hurt(tmp_path,
                                                                              weights_path):
    process = run_tlkeras(f"--flagfile={QUICKSTART}", f"--weights={weights_path}",
                          f"--output_dir={tmp_path}", "--run_name=quickstart")
    assert process.returncode == 0, process.stderr[-5000:]
    metrics = json.loads((tmp_path / "quickstart" / "metrics.json").read_text())
    phase1, phase2 = metrics["phase1"]["test"]["accuracy"], metrics["phase2"]["test"]["accuracy"]
    assert phase1 > 0.75  # Ten classes: chance is 0.1.
    assert phase2 > 0.8 and phase2 >= phase1 - 0.02
