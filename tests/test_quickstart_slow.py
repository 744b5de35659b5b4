"""The full offline quickstart (configs/quickstart.cfg, 10 epochs): `pytest -m slow`, ~2 minutes."""

import json

import pytest


@pytest.mark.slow
def test_quickstart_reaches_a_strong_classifier_and_fine_tuning_does_not_hurt(quickstart_run):
    _, run_dir = quickstart_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    phase1, phase2 = metrics["phase1"]["test"]["accuracy"], metrics["phase2"]["test"]["accuracy"]
    assert phase1 > 0.75  # Ten classes: chance is 0.1.
    assert phase2 > 0.8 and phase2 >= phase1 - 0.02
