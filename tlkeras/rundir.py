"""The run directory: where one run's logs, checkpoint, labels, metrics and export live.

A run directory belongs to one command. Started again with the same flags, an unfinished run
resumes (see tlkeras.resume); a finished or failed run, a run with other flags, or a folder that
is not a tlkeras run is never touched. These checks run before any data is read or model built.
"""

import dataclasses
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


RUN_FILE = "run.json"  # The flags a run was started with; marks a folder as a tlkeras run.


def check_available(config: Config, run_dir: str) -> bool:
    """True to resume the unfinished run of this same command in `run_dir`, False for a new run.

    Fails early if the output folder is unwritable, or `run_dir` holds anything else.
    """
    try:
        os.makedirs(config.output_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=config.output_dir):
            pass
    except OSError as error:
        raise ConfigError("output_dir", f"cannot write to {config.output_dir!r} ({error})",
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
    metrics = read_metrics(run_dir)
    if "export" in metrics:
        return "a finished run"
    if "error" in metrics:
        return f"a run that stopped with an error ({metrics['error'][:200]})"
    differing = [f"--{key}={started_with.get(key)!r} (now {value!r})"
                 for key, value in _flag_values(config).items()
                 if started_with.get(key) != value]
    if differing:
        return (f"an unfinished run started with other flags: {', '.join(differing)}; "
                "resuming needs the same command")
    return ""


def _flag_values(config: Config) -> dict:
    """The flags that define a run, as JSON values (--fresh_run only picks the folder)."""
    values = json.loads(json.dumps(dataclasses.asdict(config)))
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


def read_metrics(run_dir: str) -> dict:
    """The run's metrics.json, or {} before the first phase has written it."""
    try:
        with open(os.path.join(run_dir, "metrics.json")) as file:
            return json.load(file)
    except (OSError, ValueError):
        return {}


def write_json(path: str, data: dict) -> None:
    """Writes JSON atomically, so a killed run never leaves a half-written file."""
    temporary = f"{path}.partial"
    with open(temporary, "w") as file:
        json.dump(data, file, indent=2)
        file.write("\n")
    os.replace(temporary, path)


def write_labels(run_dir: str, class_names: list[str]) -> str:
    """labels.txt: one name per line, line i is class id i (or regression output i)."""
    path = os.path.join(run_dir, "labels.txt")
    with open(path, "w") as file:
        file.write("".join(f"{name}\n" for name in class_names))
    return path
