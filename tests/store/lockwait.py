"""For tests on a real PostgreSQL: wait until a statement is blocked on a lock."""

from __future__ import annotations

import time

from sqlalchemy import Connection, text


def wait_for_lock_wait(
    probe: Connection, like: str, errors: list[BaseException], what: str, timeout_s: float = 60
) -> None:
    """Return once a session runs a statement matching ``like`` (SQL ``LIKE``) and waits on a
    lock; fail when the thread running it recorded an error in ``errors``, or after
    ``timeout_s`` (``what``: the thing that never happened, for the message)."""
    deadline = time.monotonic() + timeout_s
    while True:
        waiting = probe.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :q"),
            {"q": like},
        ).scalar()
        probe.rollback()
        if waiting:
            return
        assert not errors, errors
        assert time.monotonic() < deadline, what
        time.sleep(0.02)
