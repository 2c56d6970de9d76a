"""``python -m haathi`` runs the CLI."""

from haathi.cli.main import run

run()
