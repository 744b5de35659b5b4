"""What every command shares: exit statuses, and errors turned into one paragraph on stderr."""

import contextlib
import logging
import sys

from absl import flags
from absl import logging as absl_logging

from tlkeras.errors import ConfigError, TrainingStopped, WorkerLost

EXIT_CONFIG_ERROR = 2
EXIT_TRAINING_STOPPED = 3
EXIT_WORKER_LOST = 4


@contextlib.contextmanager
def user_errors():
    """`ConfigError` -> `tlkeras: error: --flag: ...`, exit 2; `TrainingStopped` -> exit 3;
    `WorkerLost` (multi-worker) -> exit 4."""
    try:
        yield
    except ConfigError as error:
        print(f"tlkeras: error: {error.as_flag_message()}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    except TrainingStopped as stopped:
        print(f"tlkeras: training stopped: {stopped}", file=sys.stderr)
        sys.exit(EXIT_TRAINING_STOPPED)
    except WorkerLost as lost:
        print(f"tlkeras: worker lost: {lost}", file=sys.stderr)
        sys.exit(EXIT_WORKER_LOST)


def quiet_tensorflow_logs() -> None:
    """tlkeras' progress at INFO; TensorFlow's absl INFO chatter only with --verbosity=0."""
    logging.getLogger("tlkeras").setLevel(logging.INFO)
    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)
