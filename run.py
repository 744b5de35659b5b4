"""tlkeras: train an image classifier on a pretrained backbone, from one command.

    python run.py --flagfile=configs/cifar10.cfg
    python run.py --flagfile=configs/quickstart.cfg --epochs=2   # later flags override the file

Phase 1 trains a new head on the frozen backbone, phase 2 fine-tunes its top, and the run folder
gets TensorBoard logs, the best checkpoint, labels.txt, metrics.json and a SavedModel for TF
Serving. `python run.py --helpfull` lists every flag, grouped (data, model, phase 1, phase 2,
export, outputs and runtime); `python run.py --list_backbones` lists the backbones.
"""

import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # Keep TensorFlow's C++ start-up chatter out.

from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from tlkeras import config as tlkeras_config  # noqa: E402  (defines the flags)
from tlkeras.errors import ConfigError, TrainingStopped  # noqa: E402

EXIT_CONFIG_ERROR = 2
EXIT_TRAINING_STOPPED = 3


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    if flags.FLAGS.list_backbones:
        from tlkeras.backbones import backbone_table
        print(backbone_table())
        return
    try:
        config = tlkeras_config.config_from_flags(flags.FLAGS)
        from tlkeras import train  # Imported here so --help does not load TensorFlow.
        _quiet_tensorflow_logs()
        train.train_and_evaluate(config)
    except ConfigError as error:
        print(f"tlkeras: error: {error}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    except TrainingStopped as stopped:
        print(f"tlkeras: training stopped: {stopped}", file=sys.stderr)
        sys.exit(EXIT_TRAINING_STOPPED)


def _quiet_tensorflow_logs():
    """tlkeras' progress at INFO; TensorFlow's absl INFO chatter only with --verbosity=0."""
    logging.getLogger("tlkeras").setLevel(logging.INFO)
    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)


if __name__ == "__main__":
    app.run(main)
