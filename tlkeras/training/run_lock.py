"""One process per run folder: an OS file lock on `<run dir>/.lock`, held for the run's life.

Two processes in one run folder (two resumes of the same killed run, two fresh starts in the same
second) pick up each other's backups, write one export twice and double the TensorBoard files.
`fcntl.flock` is released by the kernel when the holder exits in any way, SIGKILL included, so a
killed run never leaves a stale lock behind: the lock *file* stays, the lock does not. The file
holds the holder's PID, for the refusal message.
"""

import fcntl
import os

from tlkeras.errors import ConfigError

LOCK_FILE = ".lock"
_held: dict[str, object] = {}  # run dir -> its open lock file: the lock lives while it is open.


def acquire(run_dir: str) -> None:
    """Locks `run_dir` for this process (again: a no-op); ConfigError if another holds it."""
    key = os.path.realpath(run_dir)
    if key in _held:
        return
    file = open(os.path.join(run_dir, LOCK_FILE), "a+")  # noqa: SIM115 (held until exit)
    if not _try_lock(file):
        raise _in_use(run_dir, _pid_in(file))
    file.truncate(0)
    file.write(f"{os.getpid()}\n")
    file.flush()
    _held[key] = file


def refuse_if_held(run_dir: str) -> None:
    """ConfigError if another process holds `run_dir`'s lock; creates nothing."""
    path = os.path.join(run_dir, LOCK_FILE)
    if os.path.realpath(run_dir) in _held or not os.path.exists(path):
        return
    with open(path) as file:
        if not _try_lock(file):
            raise _in_use(run_dir, _pid_in(file))
        fcntl.flock(file, fcntl.LOCK_UN)


def release(run_dir: str) -> None:
    """Unlocks `run_dir` (a finished run; the kernel does it on any exit anyway)."""
    file = _held.pop(os.path.realpath(run_dir), None)
    if file is not None:
        file.close()


def _try_lock(file) -> bool:
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _pid_in(file) -> str:
    file.seek(0)
    pid = file.read().strip()
    file.close()
    return pid or "unknown"


def _in_use(run_dir: str, pid: str) -> ConfigError:
    return ConfigError("run_name", f"{run_dir!r} is in use by another tlkeras process (PID "
                       f"{pid}); two processes in one run folder would overwrite each other's "
                       "backups and export", "Wait for that process to end (or stop it), then "
                       "rerun the same command to resume; or pass --fresh_run or a new "
                       "--run_name for a separate run.")
