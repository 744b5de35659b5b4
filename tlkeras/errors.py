"""The errors a user can act on: a flag to change, or a run that stopped itself.

Everything the user controls is checked before any training starts, and every failed check raises
`ConfigError`, which names the flag and says how to fix it. `run.py` turns it into a one-paragraph
message on stderr and exit status 2, without a traceback, so nothing is half-written.
"""


class ConfigError(ValueError):
    """A flag value tlkeras cannot use; the message names the flag and the fix."""

    def __init__(self, flag: str, problem: str, fix: str):
        self.flag = flag
        super().__init__(f"--{flag}: {problem.rstrip('.')}. {fix}")


class TrainingStopped(RuntimeError):
    """Training stopped itself (non-finite loss); the message names phase, epoch and the fix."""
