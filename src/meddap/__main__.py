"""`python -m meddap` runs the command-line interface."""

from meddap.cli import main

main()
