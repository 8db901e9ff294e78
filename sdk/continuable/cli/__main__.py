"""`python -m continuable.cli`."""

from continuable.cli.app import main

main()
