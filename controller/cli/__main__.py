"""``python -m controller.cli``."""

from controller.cli import run

run()
