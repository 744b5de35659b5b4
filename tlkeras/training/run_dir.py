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
from tlkeras.training import run_lock
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
    if not os.path.exists(run_dir) or _stillborn(run_dir):
        return False
    run_lock.refuse_if_held(run_dir)
    refusal = _why_not_resumable(config, run_dir)
    if refusal:
        raise ConfigError("run_name", f"{run_dir!r} holds {refusal}, which tlkeras never "
                          "overwrites", "Pass --fresh_run to start a new run beside it "
                          "(<run_name>-2), a new --run_name, or move the old run away.")
    run_lock.acquire(run_dir)  # Held from here: nothing of the run is read or written before.
    return True


def _stillborn(run_dir: str) -> bool:
    """A folder a run created but could not write its run.json into (a full disk at start, a
    kill in that instant): nothing in it to keep, so the same command may start there again."""
    return set(os.listdir(run_dir)) <= {run_lock.LOCK_FILE, f"{RUN_FILE}.partial"}


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


def create(config: Config, run_dir: str, resuming: bool = False,
           data: dict | None = None) -> str:
    """Creates and locks the run folder and writes its run.json, unless resuming the run
    already in it (`check_available` locked that one). `data` (see `data_identity`) is kept
    in run.json, so that a resume can tell whether the data changed.

    Another process may have created the folder since `check_available`: then its lock, or the
    same refusal as before, says so.
    """
    if resuming:
        return run_dir
    if check_available(config, run_dir):
        raise ConfigError("run_name", f"another tlkeras process has just started {run_dir!r}",
                          "Pass --fresh_run or a new --run_name for a separate run.")
    try:
        os.makedirs(run_dir, exist_ok=_stillborn_exists(run_dir))
    except FileExistsError:
        run_lock.refuse_if_held(run_dir)
        raise ConfigError("run_name", f"another tlkeras process has just created {run_dir!r}",
                          "Pass --fresh_run or a new --run_name for a separate run.") from None
    run_lock.acquire(run_dir)
    write_json(os.path.join(run_dir, RUN_FILE), {**_flag_values(config), DATA_KEY: data})
    return run_dir


def _stillborn_exists(run_dir: str) -> bool:
    return os.path.isdir(run_dir) and _stillborn(run_dir)


DATA_KEY = "_data"  # In run.json, beside the flags: the data the run started on.


def data_identity(output_names: list[str], sizes: dict, fingerprints: dict) -> dict:
    """What must not change under a resumed run: the classes (or targets), each split's size,
    and the fingerprints of its files (paths, sizes, modification times)."""
    return json.loads(json.dumps({"outputs": output_names, "sizes": sizes,
                                  "files": fingerprints}))


def check_same_data(config: Config, run_dir: str, data: dict) -> None:
    """Before a resume rewrites anything: ConfigError if the data differs from the data the
    run started on (a class added, files changed). Runs from before this check pass."""
    with open(os.path.join(run_dir, RUN_FILE)) as file:
        started = json.load(file).get(DATA_KEY)
    if started is None or started == data:
        return
    changed = [f"{what} {started.get(key)} (now {data[key]})"
               for key, what in (("outputs", "classes/targets"), ("sizes", "split sizes"))
               if started.get(key) != data[key]]
    changed += [f"the files of the {split} split" for split in data["files"]
                if started.get("files", {}).get(split) != data["files"][split]]
    field = "dataset" if config.data.dataset else "image_dir"
    raise ConfigError(field, f"the data changed since the run in {run_dir!r} started: "
                      f"{'; '.join(changed)}; resuming would train one model on two datasets",
                      "Put the data back as it was to resume, or pass --fresh_run (or a new "
                      "--run_name) to train on the data as it is now.")


def write_labels_file(run_dir: str, output_names: list[str]) -> str:
    """labels.txt: line i names output i (class id i, or regression column i)."""
    return write_labels(os.path.join(run_dir, "labels.txt"), output_names)
