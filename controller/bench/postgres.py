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

from controller.live import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def unavailable() -> str | None:
    """Why a throwaway PostgreSQL cannot be started here, or None when it can."""
    if not PG_BIN.joinpath("initdb").exists():
        return "PostgreSQL 15 is not installed (make system installs it as root)"
    if os.geteuid() != 0:
        return "starting PostgreSQL here needs root (initdb runs as the postgres user)"
    return None


class PostgresServer:
    """A throwaway server that can be stopped (``-m immediate``: like a crash) and started again
    on the same folder and port, for tests of what the controller does when its store goes."""

    RUN_AS = ("runuser", "-u", "postgres", "--")

    def __init__(self) -> None:
        why = unavailable()
        if why is not None:
            raise RuntimeError(why)
        self.root = Path(tempfile.mkdtemp(prefix="yiwang-pg-"))
        shutil.chown(self.root, "postgres", "postgres")
        self.port = free_port()
        self.data = str(self.root / "data")
        subprocess.run(
            [
                *self.RUN_AS,
                str(PG_BIN / "initdb"),
                "-D",
                self.data,
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

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200"
        )
        subprocess.run(
            [
                *self.RUN_AS,
                str(PG_BIN / "pg_ctl"),
                "-D",
                self.data,
                "-l",
                str(self.root / "pg.log"),
                "-o",
                opts,
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run(
            [*self.RUN_AS, str(PG_BIN / "pg_ctl"), "-D", self.data, "-m", mode, "stop"], capture_output=True
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Yields the SQLAlchemy URL of the server's ``postgres`` database."""
    server = PostgresServer()
    try:
        server.start()
        yield server.url
    finally:
        server.remove()
