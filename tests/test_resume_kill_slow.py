"""SIGKILL a real run in phase 1, at the phase switch and in phase 2; the same command started
again resumes each time and ends with the metrics of an uninterrupted run (slow: six runs)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import QUICKSTART, REPO, assert_close_at_scale, run_tlkeras

pytestmark = pytest.mark.slow
PHASE1_EPOCHS = 4
PHASE2_EPOCHS = 3
# Both runs compute on this machine with the same kernels and deterministic ops, and a resume
# restores every state, so the results repeat: 1e-6 of each value's scale (~17 float32 roundings)
# is only slack, while a resume from a wrong epoch or state moves losses by far more (> 1e-3).
RESUMED_SAME = 1e-6


def flags(output_dir, weights_path, image_dir):
    return [f"--flagfile={QUICKSTART}", f"--weights={weights_path}", f"--image_dir={image_dir}",
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
    whole = run_tlkeras(*flags(tmp_path / "whole", weights_path, small_image_dir))
    assert whole.returncode == 0, whole.stderr[-3000:]
    expected = json.loads((tmp_path / "whole" / "run" / "metrics.json").read_text())

    killed_flags = flags(tmp_path / "killed", weights_path, small_image_dir)
    cmd = [sys.executable, str(REPO / "run.py"), *killed_flags]
    run_dir = tmp_path / "killed" / "run"
    faults = [  # (where, condition on the run folder)
        ("phase 1", lambda: (backup_state(run_dir) or {}).get("epochs_done", 0) >= 1),
        ("the switch", lambda: phase1_results_written(run_dir)),
        ("phase 2", lambda: (backup_state(run_dir) or {}).get("name") == "phase2"),
    ]
    for number, (_, condition) in enumerate(faults):
        run_until_killed(cmd, condition, tmp_path / f"killed-{number}.log")
    final = run_tlkeras(*killed_flags)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "Resuming the unfinished run" in final.stderr

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    # Each restart resumed after a backed-up epoch; the last one in phase 2.
    assert len(metrics["resumed"]) == len(faults)
    assert metrics["resumed"][0]["phase"] == "phase1"
    assert metrics["resumed"][-1]["phase"] == "phase2"
    for phase in ("phase1", "phase2"):
        for key in ("loss", "accuracy"):
            assert_close_at_scale(metrics[phase]["test"][key], expected[phase]["test"][key],
                                  RESUMED_SAME, err_msg=f"{phase} test {key}")
        assert metrics[phase]["history"].keys() == expected[phase]["history"].keys()
        for key, values in expected[phase]["history"].items():
            assert_close_at_scale(metrics[phase]["history"][key], values, RESUMED_SAME,
                                  err_msg=f"{phase} {key}")
    assert sorted(os.listdir(run_dir / "export")) == ["1"]
    assert not (run_dir / "resume").exists()  # Backups go once the run has finished.
