"""The `yiwang` command line (``controller.cli:app``; ``python -m controller.cli``).

``base`` holds the application, its shared options and ``main``; importing the command modules
registers their commands on it.
"""

from controller.cli import clusters, drills, jobs, policy, server, tokens
from controller.cli.base import CliError, app, main, run

__all__ = ["CliError", "app", "clusters", "drills", "jobs", "main", "policy", "run", "server", "tokens"]
