"""The run directory: where one run's logs, checkpoint, labels, metrics and export live.

A run directory belongs to one command. Started again with the same flags, an unfinished run
resumes (see tlkeras.resume); a finished or failed run, a run with other flags, or a folder that
is not a tlkeras run is never touched. These checks run before any data is read or model built.
"""

import datetime
import json
import os
import tempfile

from tlkeras.artifacts.contract import write_labels
from tlkeras.config import Config
from tlkeras.errors import ConfigError
from tlkeras.training.run_state import FAILED, FINISHED, RunRecord, write_json


def run_dir_path(config: Config, now: datetime.datetime | None = None) -> str:
    """`<output_dir>/<run_name>`, with a default name from data source, backbone and time.

    With --fresh_run, an existing run folder is left alone and the first free
    `<run_name>-2`, `-3`, ... beside it is used instead.
    """
    now = now or datetime.datetime.now()
    runtime = config.runtime
    name = runtime.run_name or (f"{config.data.source_name}-{config.model.backbone}-"
                                f"{now:%Y%m%d-%H%M%S}")
    path = os.path.join(runtime.output_dir, name)
    suffix = 2
    while runtime.fresh_run and os.path.exists(path):
        path, suffix = os.path.join(runtime.output_dir, f"{name}-{suffix}"), suffix + 1
    return path


RUN_FILE = "run.json"  # The flags a run was started with; marks a folder as a tlkeras run.


def check_available(config: Config, run_dir: str) -> bool:
    """True to resume the unfinished run of this same command in `run_dir`, False for a new run.

    Fails early if the output folder is unwritable, or `run_dir` holds anything else.
    """
    output_dir = config.runtime.output_dir
    try:
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as error:
        raise ConfigError("output_dir", f"cannot write to {output_dir!r} ({error})",
                          "Pass a writable --output_dir.") from None
    if not os.path.exists(run_dir):
        return False
    refusal = _why_not_resumable(config, run_dir)
    if refusal:
        raise ConfigError("run_name", f"{run_dir!r} holds {refusal}, which tlkeras never "
                          "overwrites", "Pass --fresh_run to start a new run beside it "
                          "(<run_name>-2), a new --run_name, or move the old run away.")
    return True


def _why_not_resumable(config: Config, run_dir: str) -> str:
    """What the folder holds if it is not this command's unfinished run, else ''."""
    try:
        with open(os.path.join(run_dir, RUN_FILE)) as file:
            started_with = json.load(file)
    except (OSError, ValueError):
        return "something other than a tlkeras run (no readable run.json)"
    record = RunRecord.load(run_dir)
    if record.status == FINISHED:
        return "a finished run"
    if record.status == FAILED:
        return f"a run that stopped with an error ({(record.error or '')[:200]})"
    differing = [f"--{key}={started_with.get(key)!r} (now {value!r})"
                 for key, value in _flag_values(config).items()
                 if started_with.get(key) != value]
    if differing:
        return (f"an unfinished run started with other flags: {', '.join(differing)}; "
                "resuming needs the same command")
    return ""


def _flag_values(config: Config) -> dict:
    """The flags that define a run, as JSON values (--fresh_run only picks the folder)."""
    values = json.loads(json.dumps(config.flat()))
    values.pop("fresh_run")
    return values


def create(config: Config, run_dir: str, resuming: bool = False) -> str:
    """Creates the run folder and its run.json, unless resuming the run already in it.

    `exist_ok=False` closes the gap since `check_available`.
    """
    if resuming:
        return run_dir
    check_available(config, run_dir)
    os.makedirs(run_dir, exist_ok=False)
    write_json(os.path.join(run_dir, RUN_FILE), _flag_values(config))
    return run_dir


def write_labels_file(run_dir: str, output_names: list[str]) -> str:
    """labels.txt: line i names output i (class id i, or regression column i)."""
    return write_labels(os.path.join(run_dir, "labels.txt"), output_names)
