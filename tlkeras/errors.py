"""The one error type a user can fix by changing a flag.

Everything the user controls is checked before any training starts, and every failed check raises
`ConfigError`, which names the flag and says how to fix it. `run.py` turns it into a one-paragraph
message on stderr and exit status 2, without a traceback, so nothing is half-written.
"""


class ConfigError(ValueError):
    """A flag value tlkeras cannot use; the message names the flag and the fix."""

    def __init__(self, flag: str, problem: str, fix: str):
        self.flag = flag
        super().__init__(f"--{flag}: {problem.rstrip('.')}. {fix}")
