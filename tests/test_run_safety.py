"""A run folder belongs to one process and one dataset; a stopped run loses nothing."""

import json
import resource
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import tlkeras.model.backbones  # noqa: F401  (registers BackbonePreprocessing for load_model)
from helpers import QUICKSTART, REPO, run_tlkeras
from tlkeras.config import Config
from tlkeras.errors import ConfigError
from tlkeras.training import run_dir as rundir
from tlkeras.training import run_lock


def tiny_run_flags(image_dir, output_dir, weights_path, *overrides) -> list[str]:
    return [f"--flagfile={QUICKSTART}", f"--weights={weights_path}", f"--image_dir={image_dir}",
            f"--output_dir={output_dir}", "--run_name=run", "--image_size=32", "--epochs=1",
            "--fine_tune_epochs=1", "--test_split=", *overrides]


def wait_for(path, process, seconds=180):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.5)


def test_a_second_process_is_refused_and_changed_data_is_detected(tmp_path, weights_path,
                                                                  small_image_dir):
    # The reproductions: two resumes of one killed run both trained in it; after a kill, a
    # class added to the data gave a traceback after labels.txt had been rewritten.
    image_dir = tmp_path / "images"
    shutil.copytree(small_image_dir, image_dir)
    flags = tiny_run_flags(image_dir, tmp_path / "runs", weights_path, "--epochs=400",
                           "--fine_tune_epochs=0")
    first = subprocess.Popen([sys.executable, str(REPO / "run.py"), *flags], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "runs" / "run"
    try:
        wait_for(run_dir / "resume" / "state.json", first)  # Training, past its first epoch.
        second = run_tlkeras(*flags)
        assert second.returncode == 2, second.stderr[-3000:]
        message = second.stderr.strip().splitlines()[-1]
        assert message.startswith("tlkeras: error: --run_name:")
        assert f"in use by another tlkeras process (PID {first.pid})" in message
        assert first.poll() is None  # The first run goes on undisturbed.
    finally:
        first.kill()
        first.wait()
    run_lock.refuse_if_held(str(run_dir))  # SIGKILL released the lock: nothing refuses now.

    labels = (run_dir / "labels.txt").read_text()
    shutil.copytree(image_dir / "train" / "Bag", image_dir / "train" / "Zebra")
    changed = run_tlkeras(*flags)
    assert changed.returncode == 2, changed.stderr[-3000:]
    message = changed.stderr.strip().splitlines()[-1]
    assert message.startswith("tlkeras: error: --image_dir: the data changed since the run")
    assert "Zebra" in message and "Traceback" not in changed.stderr
    assert (run_dir / "labels.txt").read_text() == labels
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "running"


def test_a_full_disk_stops_the_run_resumably_without_a_truncated_file(tmp_path, weights_path,
                                                                      small_image_dir):
    # RLIMIT_FSIZE makes every write beyond 2 MB fail with EFBIG, as a full disk fails it with
    # ENOSPC: the first checkpoint (9 MB) cannot be written.
    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Fail the write instead of killing.
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 2**20, 2 * 2**20))

    flags = tiny_run_flags(small_image_dir, tmp_path / "runs", weights_path)
    full = subprocess.run([sys.executable, str(REPO / "run.py"), *flags], cwd=REPO, text=True,
                          capture_output=True, preexec_fn=small_files, timeout=600)
    assert full.returncode == 5, full.stderr[-3000:]
    message = full.stderr.strip().splitlines()[-1]
    assert message.startswith("tlkeras: run interrupted:") and "resumable" in message
    assert "Traceback" not in full.stderr
    run_dir = tmp_path / "runs" / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "running" and "File too large" in metrics["error"]
    assert not list(run_dir.rglob("*.keras")) and not list(run_dir.rglob("*partial*"))

    resumed = run_tlkeras(*flags)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and "error" not in metrics
    model = keras.models.load_model(run_dir / "checkpoints" / "best.keras")
    assert all(np.isfinite(weight).all() for weight in model.get_weights())


def test_run_name_is_a_plain_name(tmp_path):
    # The reproduction: --run_name=/abs/path or ../../x put the run outside --output_dir.
    for name in ("/abs/path", "../../x", "a/b", "..", ".hidden", ""):
        with pytest.raises(ConfigError, match="^run_name: .* is not a plain folder name"):
            Config.of(image_dir="x", run_name=name).runtime.validate()
    Config.of(image_dir="x", run_name="cifar10-lr3e-4_v2").runtime.validate()


def test_a_folder_left_without_run_json_is_started_again(tmp_path):
    # The reproduction: a disk full at start left run.json.partial, which then blocked the same
    # command ("not a tlkeras run").
    config = Config.of(image_dir="x", output_dir=str(tmp_path), run_name="run")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json.partial").write_text('{"image_dir": ')
    assert rundir.check_available(config, str(tmp_path / "run")) is False
    rundir.create(config, str(tmp_path / "run"), data={"outputs": ["a", "b"]})
    assert json.loads((tmp_path / "run" / "run.json").read_text())["_data"] == {
        "outputs": ["a", "b"]}
    assert not (tmp_path / "run" / "run.json.partial").exists()
    # The same process creating it again: another run was started there meanwhile.
    with pytest.raises(ConfigError, match="has just started"):
        rundir.create(config, str(tmp_path / "run"), data={"outputs": ["a", "b"]})
    run_lock.release(str(tmp_path / "run"))
