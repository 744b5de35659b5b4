"""The errors a user can act on: a setting to change, or a run that stopped itself.

Everything the user controls is checked before any training starts, and every failed check raises
`ConfigError`, which names the config field and says how to fix it. Fields and flags share their
names, so the command line (`tlkeras.cli`) shows the same error as `--<field>: ...` in one
paragraph on stderr with exit status 2, without a traceback, before anything is written.
"""


class ConfigError(ValueError):
    """A setting tlkeras cannot use; the message names the field and the fix."""

    def __init__(self, field: str, problem: str, fix: str):
        self.field = field
        self.problem = problem.rstrip(".")
        self.fix = fix
        super().__init__(f"{field}: {self.problem}. {fix}")

    def as_flag_message(self) -> str:
        """The same error as the command line reports it: the field as its `--flag`."""
        return f"--{self}"


class TrainingStopped(RuntimeError):
    """Training stopped itself (non-finite loss); the message names phase, epoch and the fix."""


class WorkerLost(RuntimeError):
    """A multi-worker run lost (or never reached) a worker; the message names it and says how
    to resume. The run folder is left resumable: the same command on every worker continues."""


class RunInterrupted(RuntimeError):
    """The run stopped for an outside reason (a full disk, a lost mount); its folder is left
    resumable, and the message says what to fix before rerunning the same command."""


class AccuracyGateMissed(RuntimeError):
    """The run finished below --min_test_accuracy: everything is saved, the exit status says it
    missed, and the message by how much."""
