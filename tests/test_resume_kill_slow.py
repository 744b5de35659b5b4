"""SIGKILL a real run in phase 1, at the phase switch and in phase 2; the same command started
again resumes each time and ends with the metrics of an uninterrupted run (slow: six runs)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import QUICKSTART, REPO

pytestmark = pytest.mark.slow
PHASE1_EPOCHS = 4
PHASE2_EPOCHS = 3


def command(output_dir, weights_path, image_dir):
    return [sys.executable, str(REPO / "run.py"), f"--flagfile={QUICKSTART}",
            f"--weights={weights_path}", f"--image_dir={image_dir}",
            f"--output_dir={output_dir}", "--run_name=run", "--image_size=64",
            f"--epochs={PHASE1_EPOCHS}", f"--fine_tune_epochs={PHASE2_EPOCHS}",
            "--feature_cache=off"]  # Image epochs in phase 1 last long enough to be hit.


def backup_state(run_dir):
    try:
        return json.loads((run_dir / "resume" / "state.json").read_text())["record"]
    except (OSError, ValueError):
        return None


def phase1_results_written(run_dir):
    try:
        return "phase1" in json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return False


def run_until_killed(cmd, condition, log_path, timeout=300):
    """Starts the command, SIGKILLs it as soon as `condition()` holds; fails if it ends first."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        deadline = time.monotonic() + timeout
        try:
            while not condition():
                assert process.poll() is None, f"ended before the kill: {log_path}"
                assert time.monotonic() < deadline, f"condition not reached: {log_path}"
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait()


def test_sigkill_in_phase1_at_the_switch_and_in_phase2_resumes_to_the_same_metrics(
        tmp_path, weights_path, small_image_dir):
    whole = subprocess.run(command(tmp_path / "whole", weights_path, small_image_dir),
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    expected = json.loads((tmp_path / "whole" / "run" / "metrics.json").read_text())

    cmd = command(tmp_path / "killed", weights_path, small_image_dir)
    run_dir = tmp_path / "killed" / "run"
    faults = [  # (where, condition on the run folder)
        ("phase 1", lambda: (backup_state(run_dir) or {}).get("epochs_done", 0) >= 1),
        ("the switch", lambda: phase1_results_written(run_dir)),
        ("phase 2", lambda: (backup_state(run_dir) or {}).get("name") == "phase2"),
    ]
    for number, (_, condition) in enumerate(faults):
        run_until_killed(cmd, condition, tmp_path / f"killed-{number}.log")
    final = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "Resuming the unfinished run" in final.stderr

    metrics = json.loads((run_dir / "metrics.json").read_text())
    # Each restart resumed after a backed-up epoch; the last one in phase 2.
    assert len(metrics["resumed"]) == len(faults)
    assert metrics["resumed"][0]["phase"] == "phase1"
    assert metrics["resumed"][-1]["phase"] == "phase2"
    for phase in ("phase1", "phase2"):
        for key in ("loss", "accuracy"):
            assert metrics[phase]["test"][key] == pytest.approx(
                expected[phase]["test"][key], abs=1e-6), (phase, key)
        assert metrics[phase]["history"].keys() == expected[phase]["history"].keys()
        for key, values in expected[phase]["history"].items():
            assert metrics[phase]["history"][key] == pytest.approx(values, abs=1e-6), key
    assert sorted(os.listdir(run_dir / "export")) == ["1"]
    assert not (run_dir / "resume").exists()  # Backups go once the run has finished.
