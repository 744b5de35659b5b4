"""`tlkeras COMMAND [flags]`: one console script, one module per command.

    tlkeras train --flagfile=configs/quickstart.cfg
    tlkeras predict --model=runs/<run>/export photo.jpg
    tlkeras evaluate --model=runs/<run>/export --image_dir=DIR --split=test --report_dir=OUT
    tlkeras rest-request photo.jpg > request.json
    tlkeras offline-weights

The command's module is imported once chosen and defines only its own flags
(`define_flags()`), so `tlkeras evaluate --helpfull` lists evaluate's flags and nothing else.
"""

import importlib
import os
import sys

from absl import app, flags

from tlkeras.cli import common

COMMANDS = {
    "train": ("tlkeras.cli.train", "train both phases, report and export (run.py does the same)"),
    "predict": ("tlkeras.cli.predict", "top-k classes of image files from an export"),
    "evaluate": ("tlkeras.cli.evaluate", "the evaluation report of an export on a split"),
    "rest-request": ("tlkeras.cli.rest_request", "TF Serving REST request body for images"),
    "offline-weights": ("tlkeras.cli.offline_weights", "write the offline MobileNetV2 weights"),
}


def usage() -> str:
    rows = "\n".join(f"  {name:<16} {summary}" for name, (_, summary) in COMMANDS.items())
    return (f"usage: tlkeras COMMAND [--flags]\n\ncommands:\n{rows}\n\n"
            "`tlkeras COMMAND --help` lists a command's flags.")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(usage(), file=sys.stderr)
        sys.exit(0 if len(argv) > 1 and argv[1] in ("-h", "--help") else 2)
    run(argv[1], [f"tlkeras {argv[1]}", *argv[2:]])


def run(command: str, argv: list[str]) -> None:
    """Runs one command's `main` under absl with `argv` (argv[0] is the program name)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ start-up chatter.
    module = importlib.import_module(COMMANDS[command][0])
    module.define_flags()
    app.run(_guarded(module.main), argv=argv, flags_parser=parse_flags)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parsing, but a bad flag (unknown, mistyped value, missing flagfile) is a bad value
    like any other: one line and exit 2, where absl's own parser exits 1."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        message = message.removeprefix("ERROR:: ").rstrip(".")  # absl's missing-flagfile text.
        print(f"tlkeras: error: {message}. Pass --helpfull to list every flag with its type "
              "and default.", file=sys.stderr)
        sys.exit(common.EXIT_CONFIG_ERROR)


def _guarded(main):
    """`main` with a misused command line (absl's `UsageError`, exit 1 and the whole usage
    text) turned into one line and exit 2, and Ctrl-C into one line and exit 130, for every
    command; a command's own `user_errors` (train: the resumable note) takes precedence."""
    def guarded(argv):
        with common.user_errors(on_interrupt=""):
            return main(argv)
    return guarded


if __name__ == "__main__":
    main()
