"""Retention: the leader's periodic pass deleting finished jobs older than the retention period,
with their events and decisions, and the decision parts nothing names any more
(``controller/store/retention.py`` says what goes and what stays). Each pass that deleted
something appends one audit row (``retention.pruned``) with the numbers.

Dependencies: the store and the settings (``retention_days``, ``retention_check_s``)."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from controller.settings import Settings
from controller.store import audit_chain
from controller.store.store import Store, now

log = logging.getLogger("yiwang.controller")
PASS_JOBS = 2_000  # jobs a pass deletes at most (a backlog is worked through pass by pass)
BACKLOG_GAP_S = 10.0  # the next pass, while a backlog remains
PRUNED = "retention.pruned"


class Retention:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._next = time.monotonic() + min(60.0, settings.retention_check_s)  # not at start-up

    def maybe_prune(self) -> dict[str, Any] | None:
        """A pass when one is due and retention is on; its numbers, else None."""
        days = self.settings.retention_days
        if days <= 0 or time.monotonic() < self._next:
            return None
        out = self.prune(now() - timedelta(days=days))
        self._next = time.monotonic() + (BACKLOG_GAP_S if out["backlog"] else self.settings.retention_check_s)
        return out

    def prune(self, before: datetime, limit: int = PASS_JOBS) -> dict[str, Any]:
        """Delete up to ``limit`` jobs finished before ``before`` with their events and
        decisions and, when no backlog of such jobs remains, the decision parts nothing names."""
        t0 = time.perf_counter()
        counts: dict[str, Any] = dict(self.store.prune_finished(before, limit=limit))
        backlog = counts["jobs"] >= limit
        counts["parts"] = 0 if backlog else self.store.prune_parts(before)
        counts.update(before=before.isoformat(), backlog=backlog, seconds=round(time.perf_counter() - t0, 3))
        if counts["jobs"] or counts["parts"]:
            with self.store.tx() as conn:
                audit_chain.append(
                    conn,
                    [
                        {
                            "at": now(),
                            "actor": "retention",
                            "role": "system",
                            "tenant": None,
                            "action": PRUNED,
                            "target": "jobs",
                            "detail": counts,
                        }
                    ],
                )
            log.info("retention: %s", counts)
        return counts
