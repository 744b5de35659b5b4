"""`tlkeras train`: both phases, reports and the export, from flags or a flagfile.

    tlkeras train --flagfile=configs/quickstart.cfg --epochs=2   # later flags override the file

Every config field is a flag (see `tlkeras train --helpfull`, grouped as the config is), plus
`--list_backbones`. `run.py` at the repository root calls this same `main`.
"""

from absl import app, flags

from tlkeras import config as tlkeras_config
from tlkeras.cli import common
from tlkeras.cli import flags as config_flags


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    config_flags.define_all(flag_values)
    flags.DEFINE_bool("list_backbones", False, "Print every backbone with its default input "
                      "size and parameter count, then exit.", module_name="tlkeras (2) model",
                      flag_values=flag_values)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    if flags.FLAGS.list_backbones:
        from tlkeras.model.backbones import backbone_table
        print(backbone_table())
        return
    with common.user_errors():
        config = config_flags.read_config()
        tlkeras_config.validate(config)
        from tlkeras.training import workflow  # Here, so --help does not load TensorFlow.
        common.quiet_tensorflow_logs()
        workflow.train_and_evaluate(config)
