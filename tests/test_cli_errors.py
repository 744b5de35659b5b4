"""Bad command lines, for every command: one paragraph naming the flag (or file) and the fix,
exit 2 (130 for Ctrl-C), no traceback, nothing written.

Each test runs the real command in a subprocess, as a user would. All but the Ctrl-C test fail
before any training starts; most fail before TensorFlow is even imported.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import FASHION_MINI, QUICKSTART, REPO, run_module, run_tlkeras

IMAGE = sorted((FASHION_MINI / "test").glob("*/*.png"))[0]
INTERRUPTED = ("tlkeras: interrupted; the run folder is left resumable: rerun the same command "
               "to resume after the last finished epoch")


def assert_usage_error(process, *phrases: str) -> str:
    """Exit 2 with `tlkeras: error: ...` as the last line of stderr, holding every phrase."""
    assert process.returncode == 2, process.stderr[-3000:]
    message = process.stderr.strip().splitlines()[-1]
    assert message.startswith("tlkeras: error: "), process.stderr[-3000:]
    for phrase in phrases:
        assert phrase in message, message
    assert "Traceback" not in process.stderr
    return message


@pytest.fixture(scope="module")
def export(trained_run):
    """The export of the session's end-to-end run (trained once, shared with other modules)."""
    return trained_run[1] / "export"


def quickstart(tmp_path, *overrides: str):
    """The quickstart command into tmp_path/runs; later flags override the file's."""
    return run_tlkeras(f"--flagfile={QUICKSTART}", f"--output_dir={tmp_path / 'runs'}",
                       "--run_name=bad", *overrides)


# absl's own parse errors: exit 2 like any bad value (absl alone exits 1), for every command.
COMMANDS = {
    "run.py": lambda *args: run_tlkeras(*args),
    "train": lambda *args: run_module("train", *args),
    "predict": lambda *args: run_module("predict", "--model=x", *args, str(IMAGE)),
    "evaluate": lambda *args: run_module("evaluate", "--model=x", "--report_dir=y", *args),
    "rest-request": lambda *args: run_module("rest-request", *args, str(IMAGE)),
    "offline-weights": lambda *args: run_module("offline-weights", *args),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("flag, phrases", [
    ("--flagfile=nope.cfg", ["Unable to open flagfile", "nope.cfg"]),
    ("--no_such_flag", ["Unknown command line flag 'no_such_flag'"]),
])
def test_absl_flag_errors_exit_2_with_one_line(command, flag, phrases):
    process = COMMANDS[command](flag)
    assert_usage_error(process, *phrases, "Pass --helpfull to list every flag")
    assert process.stdout == ""


@pytest.mark.parametrize("command, args, phrases", [
    ("run.py", ["--image_size=abc"], ["--image_size=abc"]),
    ("train", ["--image_size=abc"], ["--image_size=abc"]),
    ("predict", ["--top_k=abc"], ["--top_k=abc"]),
    ("evaluate", ["--batch_size=abc"], ["--batch_size=abc"]),
])
def test_a_flag_value_of_the_wrong_type_exits_2(command, args, phrases):
    assert_usage_error(COMMANDS[command](*args), *phrases)


def test_a_missing_required_flag_exits_2():
    assert_usage_error(run_module("predict", str(IMAGE)), "--model")


def test_unexpected_arguments_exit_2_in_one_line():
    message = assert_usage_error(run_tlkeras(f"--flagfile={QUICKSTART}", "epochs=2"),
                                 "unexpected arguments ['epochs=2']", "--flag")
    assert "USAGE" not in message


@pytest.mark.parametrize("args, flag", [
    (["--batch_size=0"], "batch_size"),
    (["--batch_size=-1"], "batch_size"),  # Printed nothing and exited 0.
    (["--top_k=0"], "top_k"),  # Printed empty lines.
])
def test_predict_refuses_counts_below_one(export, args, flag):
    process = run_module("predict", f"--model={export}", *args, str(IMAGE))
    assert_usage_error(process, f"tlkeras: error: --{flag}: must be >= 1", f"--{flag}=1")
    assert process.stdout == ""


@pytest.mark.parametrize("flag", ["batch_size", "top_k"])
def test_evaluate_refuses_counts_below_one(export, tmp_path, flag):
    report_dir = tmp_path / "report"
    process = run_module("evaluate", f"--model={export}", f"--image_dir={FASHION_MINI}",
                         f"--report_dir={report_dir}", f"--{flag}=0")
    assert_usage_error(process, f"tlkeras: error: --{flag}: must be", f"Fix --{flag}")
    assert not report_dir.exists()  # It wrote top_0_accuracy.


def test_predict_with_no_existing_image_names_it(export, tmp_path):
    missing = tmp_path / "missing.png"
    process = run_module("predict", f"--model={export}", str(missing))
    assert_usage_error(process, f"no such file or folder: '{missing}'", "Check the path")
    assert process.stdout == ""


@pytest.mark.parametrize("case", ["missing", "empty folder", "nothing", "unwritable out"])
def test_rest_request_names_what_is_wrong(tmp_path, case):
    missing, empty = tmp_path / "missing.png", tmp_path / "empty"
    empty.mkdir()
    args, phrase = {
        "missing": ([str(missing)], f"no such file or folder: '{missing}'"),
        "empty folder": ([str(empty)], f"no image files in '{empty}'"),
        "nothing": ([], "no images given"),
        "unwritable out": ([f"--out={missing}/request.json", str(IMAGE)], "--out: cannot write"),
    }[case]
    process = run_module("rest-request", *args)
    assert_usage_error(process, phrase)
    assert process.stdout == ""


@pytest.mark.parametrize("overrides, flag, phrases", [
    (["--strategy=tpu"], "tpu", ["no --tpu was given", "/cpu:0", "--tpu=local"]),
    (["--strategy=mirrored", "--devices=/cpu:0,/gpu:7"], "devices",
     ["no device /gpu:7", "it has /cpu:0", "leave --devices empty"]),
], ids=["tpu-without-address", "missing-gpu"])
def test_strategy_needs_devices_that_exist(tmp_path, weights_path, overrides, flag, phrases):
    process = quickstart(tmp_path, f"--weights={weights_path}", *overrides)
    assert_usage_error(process, f"tlkeras: error: --{flag}: ", *phrases)
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def bad_weights(tmp_path_factory):
    """Files --weights must refuse: text named like weights, another model's weights (two
    arrays), MobileNetV2's at another width (same arrays, other shapes), a wrong extension."""
    import keras

    folder = tmp_path_factory.mktemp("bad_weights")
    (folder / "junk.weights.h5").write_text("not an HDF5 file")
    (folder / "weights.bin").write_text("whatever")
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    small.save_weights(folder / "small.weights.h5")
    narrow = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                            include_top=False, weights=None)
    narrow.save_weights(folder / "narrow.weights.h5")
    return folder


@pytest.mark.parametrize("name, phrases", [
    ("junk.weights.h5", ["is not a readable Keras weights file"]),
    ("small.weights.h5", ["does not match MobileNetV2", "has 260 weight arrays in 104 layers",
                          "the file holds 2 in 1"]),
    ("narrow.weights.h5", ["does not match MobileNetV2", "names or shapes differ"]),
    ("weights.bin", ["is not named like a Keras weights file"]),
])
def test_weights_of_another_model_or_no_weights_file(tmp_path, bad_weights, name, phrases):
    process = quickstart(tmp_path, f"--weights={bad_weights / name}", "--image_size=32")
    message = assert_usage_error(process, "tlkeras: error: --weights: ", name, *phrases,
                                 "--weights=imagenet", "--weights=none")
    assert len(message) < 700 and len(process.stderr.strip().splitlines()) < 10, process.stderr
    assert not (tmp_path / "runs" / "bad").exists()


@pytest.mark.slow
def test_ctrl_c_stops_training_resumably(tmp_path, weights_path, small_image_dir):
    args = [f"--flagfile={QUICKSTART}", f"--weights={weights_path}",
            f"--image_dir={small_image_dir}", "--image_size=32", "--epochs=2",
            "--fine_tune_epochs=1", f"--output_dir={tmp_path / 'runs'}", "--run_name=ctrl_c"]
    metrics = tmp_path / "runs" / "ctrl_c" / "metrics.json"
    with open(tmp_path / "stderr", "w+") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "run.py"), *args], cwd=REPO, stderr=stderr,
            stdout=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        _wait_for(metrics, process)  # Written when the run folder is ready, before phase 1.
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130
        stderr.seek(0)
        log = stderr.read()
    assert log.strip().splitlines()[-1] == INTERRUPTED, log[-3000:]
    assert "Traceback" not in log and "KeyboardInterrupt" not in log
    assert json.loads(metrics.read_text())["status"] == "running"
    rerun = run_tlkeras(*args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    record = json.loads(metrics.read_text())
    assert record["status"] == "finished" and len(record["resumed"]) == 1


def _wait_for(path, process, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.1)
