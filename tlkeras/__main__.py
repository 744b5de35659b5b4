"""`python -m tlkeras COMMAND [flags]`: the `tlkeras` console script without installing it."""

from tlkeras.cli.main import main

main()
