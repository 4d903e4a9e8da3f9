"""A throwaway PostgreSQL 15 (Debian's package) on loopback, for the tests and the benchmark:
``initdb`` into a temporary directory as the ``postgres`` user, ``pg_ctl start`` on a free port
with fsync on, and ``pg_ctl stop -m immediate`` plus removal at the end. Needs root (initdb runs
as ``postgres``) and /usr/lib/postgresql/15 (``make system`` installs it when run as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controller.api.server import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def unavailable() -> str | None:
    """Why a throwaway PostgreSQL cannot be started here, or None when it can."""
    if not PG_BIN.joinpath("initdb").exists():
        return "PostgreSQL 15 is not installed (make system installs it as root)"
    if os.geteuid() != 0:
        return "starting PostgreSQL here needs root (initdb runs as the postgres user)"
    return None


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Yields the SQLAlchemy URL of the server's ``postgres`` database."""
    why = unavailable()
    if why is not None:
        raise RuntimeError(why)
    root = Path(tempfile.mkdtemp(prefix="yiwang-pg-"))
    shutil.chown(root, "postgres", "postgres")
    port = free_port()
    run_as = ["runuser", "-u", "postgres", "--"]
    data = str(root / "data")
    try:
        subprocess.run(
            [
                *run_as,
                str(PG_BIN / "initdb"),
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *run_as,
                str(PG_BIN / "pg_ctl"),
                "-D",
                data,
                "-l",
                str(root / "pg.log"),
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200",
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(PG_BIN / "pg_ctl"), "-D", data, "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)
