"""--strategy=multi_worker with two real worker processes on 127.0.0.1, as users launch it.

Each worker is `run.py` with its own TF_CONFIG (free ports found by binding port 0), no GPU,
and a timeout. The reference is a one-process run with the same global batch (2 workers x
--batch_size 8 = --batch_size 16). Dropout is 0 in the runs that are compared weight for
weight: each replica draws its own dropout mask for its half of a batch, so with dropout the
two runs are equally good but not equal.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import REPO, run_tlkeras

pytestmark = pytest.mark.slow  # Minutes of subprocess training: the slow tier.

WORKERS = 2
PER_REPLICA_BATCH = 8
TIMEOUT = 900  # Seconds per worker process; a hang fails the test instead of CI.
# Both phases, both caches, on 4 classes x 16 train images at 32 px: 58 train examples, so the
# last global batch of every epoch (10) is split between the workers, as uneven data is. Plain
# SGD: its update is linear in the gradient, so the float32 reordering of a split batch stays
# at its own scale, while Adam divides by sqrt(v), which turns the reordering of a gradient
# near zero into a step of up to the learning rate (measured: 1 of 5,120 head weights 1.1e-5
# apart with Adam at 1e-3, the rest within 1e-7).
# --export_model=last: the weights compared are the training's, whichever epoch scored best.
FLAGS = ("--image_size=32", "--epochs=2", "--fine_tune_epochs=2", "--unfreeze=10",
         "--seed=1", "--dropout=0", "--optimizer=sgd", "--learning_rate=0.01",
         "--fine_tune_optimizer=sgd", "--fine_tune_learning_rate=1e-4", "--export_model=last")


@pytest.fixture(scope="module")
def four_class_dir(small_image_dir, tmp_path_factory):
    """4 classes of the small folder: 16 train (of them 58 train, 6 validation), 8 test each."""
    root = tmp_path_factory.mktemp("four_classes")
    for split, per_class in (("train", 16), ("test", 8)):
        for class_dir in sorted((small_image_dir / split).iterdir())[:4]:
            (root / split / class_dir.name).mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:per_class]:
                (root / split / class_dir.name / image.name).symlink_to(image)
    return root


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start_workers(ports: list[int], flags: list[str], scratch, count: int | None = None):
    """Starts workers 0..count-1 of a cluster of len(ports); each gets its own TMPDIR."""
    cluster = [f"127.0.0.1:{port}" for port in ports]
    processes = []
    for index in range(len(ports) if count is None else count):
        tmp = scratch / f"tmp-worker{index}"
        tmp.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
               "TMPDIR": str(tmp), "TF_CONFIG": json.dumps(
                   {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})}
        log = open(scratch / f"worker{index}.log", "a")
        processes.append(subprocess.Popen(
            [sys.executable, str(REPO / "run.py"), *flags], cwd=REPO, env=env,
            stdout=log, stderr=subprocess.STDOUT))
    return processes


def wait_all(processes, timeout=TIMEOUT) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
    return codes


def worker_flags(image_dir, weights, output_dir, *extra) -> list[str]:
    return [f"--image_dir={image_dir}", f"--weights={weights}", f"--output_dir={output_dir}",
            "--run_name=mw", "--strategy=multi_worker", f"--batch_size={PER_REPLICA_BATCH}",
            *FLAGS, *extra]


def log_of(scratch, index: int) -> str:
    return (scratch / f"worker{index}.log").read_text()


def final_weights(run_dir) -> list[np.ndarray]:
    import keras

    import tlkeras.model.backbones  # noqa: F401  (registers the preprocessing layer)

    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    return [weight.numpy() for weight in model.weights]


@pytest.fixture(scope="module")
def one_process_run(four_class_dir, weights_path, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("one_process")
    process = run_tlkeras(f"--image_dir={four_class_dir}", f"--weights={weights_path}",
                          f"--output_dir={output_dir}", "--run_name=one",
                          f"--batch_size={PER_REPLICA_BATCH * WORKERS}", *FLAGS)
    assert process.returncode == 0, process.stderr[-3000:]
    return output_dir / "one"


@pytest.fixture(scope="module")
def two_worker_run(four_class_dir, weights_path, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("two_workers")
    processes = start_workers(free_ports(WORKERS), worker_flags(
        four_class_dir, weights_path, scratch / "runs"), scratch)
    codes = wait_all(processes)
    assert codes == [0, 0], log_of(scratch, 0)[-3000:] + log_of(scratch, 1)[-3000:]
    return scratch


def test_two_workers_train_like_one_process_with_the_same_global_batch(two_worker_run,
                                                                       one_process_run):
    run_dir = two_worker_run / "runs" / "mw"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    reference = json.loads((one_process_run / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert metrics["phase1"]["cache"]["batches_computed"] > 0  # Both phases on cached
    assert metrics["phase2"]["cache"]["batches_computed"] > 0  # activations, on each worker.
    # Same global batches, same updates: only float32 summation order differs (activations
    # and gradients are computed on each worker's half of a batch, then gathered or summed).
    # A wrong batch or a missed update moves weights by learning rate x gradient (~1e-3 in
    # phase 1); 16 SGD steps of reordered float32 sums moved none by more than 1e-6 here.
    for ours, theirs in zip(final_weights(run_dir), final_weights(one_process_run),
                            strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    assert metrics["phase2"]["test"] == pytest.approx(reference["phase2"]["test"], abs=1e-4)


def test_only_the_chief_writes_outputs(two_worker_run):
    runs = two_worker_run / "runs"
    assert [path.name for path in runs.iterdir()] == ["mw"]
    assert [path.name for path in (runs / "mw" / "export").iterdir()] == ["1"]
    assert list((two_worker_run / "tmp-worker1").iterdir()) == []  # Its temporary run is gone.
    assert "SavedModel:" in log_of(two_worker_run, 0)
    assert "SavedModel:" not in log_of(two_worker_run, 1)
    assert "worker:1 finished; the chief wrote the run's outputs" in log_of(two_worker_run, 1)


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_and_the_same_command_resumes(
        four_class_dir, weights_path, tmp_path):
    ports = free_ports(WORKERS)
    flags = worker_flags(four_class_dir, weights_path, tmp_path / "runs", "--fine_tune_epochs=3")
    processes = start_workers(ports, flags, tmp_path)
    state = tmp_path / "runs" / "mw" / "resume" / "state.json"
    deadline = time.monotonic() + TIMEOUT
    while not (state.exists() and '"phase2"' in state.read_text()):  # Mid-phase 2.
        assert time.monotonic() < deadline and processes[0].poll() is None, log_of(tmp_path, 0)
        time.sleep(0.2)
    processes[1].send_signal(signal.SIGKILL)
    assert wait_all(processes, timeout=300)[0] == 4  # The chief stops itself: WorkerLost.
    assert f"worker:0 lost worker:1 (127.0.0.1:{ports[1]})" in log_of(tmp_path, 0)
    assert json.loads((tmp_path / "runs" / "mw" / "metrics.json").read_text())["status"] == \
        "running"
    codes = wait_all(start_workers(ports, flags, tmp_path))
    assert codes == [0, 0], log_of(tmp_path, 0)[-3000:]
    resumed = json.loads((tmp_path / "runs" / "mw" / "metrics.json").read_text())
    assert resumed["resumed"][-1]["phase"] == "phase2"
    uninterrupted = _uninterrupted_three_phase2_epochs(four_class_dir, weights_path, tmp_path)
    assert resumed["phase2"]["test"] == pytest.approx(uninterrupted["phase2"]["test"], abs=1e-4)


def _uninterrupted_three_phase2_epochs(image_dir, weights, scratch) -> dict:
    output_dir = scratch / "reference"
    process = run_tlkeras(f"--image_dir={image_dir}", f"--weights={weights}",
                          f"--output_dir={output_dir}", "--run_name=one",
                          f"--batch_size={PER_REPLICA_BATCH * WORKERS}", *FLAGS,
                          "--fine_tune_epochs=3")
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads((output_dir / "one" / "metrics.json").read_text())


def test_a_missing_worker_is_named_within_the_bounded_wait(four_class_dir, weights_path,
                                                          tmp_path):
    ports = free_ports(WORKERS)
    flags = worker_flags(four_class_dir, weights_path, tmp_path / "runs", "--worker_timeout=20")
    start = time.monotonic()
    codes = wait_all(start_workers(ports, flags, tmp_path, count=1), timeout=240)
    assert codes == [-signal.SIGKILL]  # By its watchdog: TensorFlow's wait ignores SIGTERM.
    log = log_of(tmp_path, 0)
    assert f"worker:1 (127.0.0.1:{ports[1]}) did not answer" in log, log[-3000:]
    assert "--worker_timeout" in log
    assert time.monotonic() - start < 180
    assert not (tmp_path / "runs" / "mw").exists()  # Nothing written before the cluster met.
