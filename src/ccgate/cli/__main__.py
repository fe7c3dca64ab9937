"""`python -m ccgate.cli`: the same as the `ccgate` command."""

from ccgate.cli import main

main()
