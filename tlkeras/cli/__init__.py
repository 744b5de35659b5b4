"""The command line: `tlkeras <command>` (console script) or `python -m tlkeras <command>`.

Each command is one module whose `define_flags()` defines only its own absl flags, so
`tlkeras evaluate --helpfull` lists evaluate's flags and nothing else. Config fields become flags
through `tlkeras.cli.flags`; `ConfigError`s about fields become `--flag` messages and exit status
2 here, and nowhere in the library.
"""
