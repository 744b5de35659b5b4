"""The run directory: where one run's logs, checkpoint, labels, metrics and export live.

A run directory is created once and never reused: an existing one means an earlier run's results,
which tlkeras refuses to overwrite. Both checks run before any data is read or model built.
"""

import datetime
import json
import os
import tempfile

from tlkeras.config import Config
from tlkeras.errors import ConfigError


def run_dir_path(config: Config, now: datetime.datetime | None = None) -> str:
    """`<output_dir>/<run_name>`, with a default name from data source, backbone and time.

    With --fresh_run, an existing run folder is left alone and the first free
    `<run_name>-2`, `-3`, ... beside it is used instead.
    """
    now = now or datetime.datetime.now()
    name = config.run_name or (f"{config.data_source_name}-{config.backbone}-"
                               f"{now:%Y%m%d-%H%M%S}")
    path = os.path.join(config.output_dir, name)
    suffix = 2
    while config.fresh_run and os.path.exists(path):
        path, suffix = os.path.join(config.output_dir, f"{name}-{suffix}"), suffix + 1
    return path


def check_available(config: Config, run_dir: str) -> None:
    """Fails early if the output folder is unwritable or the run folder already exists."""
    try:
        os.makedirs(config.output_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=config.output_dir):
            pass
    except OSError as error:
        raise ConfigError("output_dir", f"cannot write to {config.output_dir!r} ({error})",
                          "Pass a writable --output_dir.") from None
    if os.path.exists(run_dir):
        raise ConfigError("run_name", f"{run_dir!r} holds {_describe_run(run_dir)}, which "
                          "tlkeras never overwrites", "Pass --fresh_run to start a new run "
                          "beside it (<run_name>-2), a new --run_name, or move the old run away.")


def _describe_run(run_dir: str) -> str:
    try:
        with open(os.path.join(run_dir, "metrics.json")) as file:
            finished = "export" in json.load(file)
    except (OSError, ValueError):
        finished = False
    return ("a finished run" if finished else
            "an unfinished or failed run (resuming it is not supported yet)")


def create(config: Config, run_dir: str) -> str:
    """Creates the run folder; `exist_ok=False` closes the gap since `check_available`."""
    check_available(config, run_dir)
    os.makedirs(run_dir, exist_ok=False)
    return run_dir


def write_json(path: str, data: dict) -> None:
    """Writes JSON atomically, so a killed run never leaves a half-written file."""
    temporary = f"{path}.partial"
    with open(temporary, "w") as file:
        json.dump(data, file, indent=2)
        file.write("\n")
    os.replace(temporary, path)


def write_labels(run_dir: str, class_names: list[str]) -> str:
    """labels.txt: one class name per line, line i is class id i."""
    path = os.path.join(run_dir, "labels.txt")
    with open(path, "w") as file:
        file.write("".join(f"{name}\n" for name in class_names))
    return path
