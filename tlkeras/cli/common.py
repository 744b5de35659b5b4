"""What every command shares: exit statuses, and errors turned into one paragraph on stderr."""

import contextlib
import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging

from tlkeras.errors import (
    AccuracyGateMissed,
    ConfigError,
    RunInterrupted,
    TrainingStopped,
    WorkerLost,
)
from tlkeras.image_files import IMAGE_EXTENSIONS, expand_image_paths

EXIT_CONFIG_ERROR = 2
EXIT_TRAINING_STOPPED = 3
EXIT_WORKER_LOST = 4
EXIT_RUN_INTERRUPTED = 5  # Stopped from outside (a full disk); resumable.
EXIT_ACCURACY_GATE = 6  # Finished and saved, below --min_test_accuracy.
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a program stopped by Ctrl-C.

# Training keeps metrics.json `running` when interrupted, so the same command resumes it.
RESUMABLE = ("; the run folder is left resumable: rerun the same command to resume after the "
             "last finished epoch")


@contextlib.contextmanager
def user_errors(on_interrupt: str = RESUMABLE):
    """`ConfigError` -> `tlkeras: error: --flag: ...` and a misused command line (`UsageError`)
    -> `tlkeras: error: ...`, exit 2; `TrainingStopped` -> exit 3; `WorkerLost` (multi-worker)
    -> exit 4; `RunInterrupted` (a full disk) -> exit 5; `AccuracyGateMissed` -> exit 6; Ctrl-C
    -> `tlkeras: interrupted` plus `on_interrupt`, exit 130. No traceback: each is something the
    user did or can act on, not a bug."""
    try:
        yield
    except ConfigError as error:
        _exit(f"tlkeras: error: {error.as_flag_message()}", EXIT_CONFIG_ERROR)
    except app.UsageError as error:
        _exit(f"tlkeras: error: {error}", EXIT_CONFIG_ERROR)
    except TrainingStopped as stopped:
        _exit(f"tlkeras: training stopped: {stopped}", EXIT_TRAINING_STOPPED)
    except WorkerLost as lost:
        _exit(f"tlkeras: worker lost: {lost}", EXIT_WORKER_LOST)
    except RunInterrupted as interrupted:
        _exit(f"tlkeras: run interrupted: {interrupted}", EXIT_RUN_INTERRUPTED)
    except AccuracyGateMissed as missed:
        _exit(f"tlkeras: accuracy gate missed: {missed}", EXIT_ACCURACY_GATE)
    except KeyboardInterrupt:
        _exit(f"tlkeras: interrupted{on_interrupt}", EXIT_INTERRUPTED)


def _exit(message: str, status: int) -> None:
    print(message, file=sys.stderr)
    sys.exit(status)


def image_paths(args: list[str], missing_ok: bool = False) -> list[str]:
    """The image files named by the positional arguments (folders expanded), checked before
    any model loads: a mistyped path is a usage error (exit 2). With `missing_ok` (predict,
    which reports each file it cannot read and predicts the rest) only when nothing exists."""
    if not args:
        raise app.UsageError("no images given. Pass image files or folders after the flags.")
    missing = [path for path in args if not os.path.exists(path)]
    if missing and (not missing_ok or len(missing) == len(args)):
        raise app.UsageError(f"no such file or folder: {', '.join(map(repr, missing))}. "
                             "Check the path(s), then pass existing image files or folders.")
    paths = expand_image_paths(args)
    if not paths:
        raise app.UsageError(f"no image files in {', '.join(map(repr, args))}. Pass image "
                             f"files or folders holding {'/'.join(IMAGE_EXTENSIONS)} files.")
    return paths


def require_at_least_one(name: str, what: str) -> None:
    """A command's own integer flag that counts something (`--batch_size`, `--top_k`)."""
    value = flags.FLAGS[name].value
    if value < 1:
        raise ConfigError(name, f"must be >= 1 ({what}), got {value}",
                          f"Pass --{name}=1 or more.")


def quiet_tensorflow_logs() -> None:
    """tlkeras' progress at INFO; TensorFlow's absl INFO chatter only with --verbosity=0."""
    logging.getLogger("tlkeras").setLevel(logging.INFO)
    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)
