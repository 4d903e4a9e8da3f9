"""The Store: every durable read and write of the controller, in short transactions.

``Store`` is composed of one repository per aggregate, each in its own module:

- ``base.py``: transactions (``tx``, ``read``), the bulk ``executemany``, ``utc``/``now``;
- ``engine.py``: the engine (SQLite/PostgreSQL settings, multi-host URLs, failover errors);
- ``jobs.py``: jobs and their phase changes; ``cycles.py``: the scheduling cycle's writes and
  decisions; ``events.py``: the change feed and event history; ``audit.py``: audit log reads
  (``audit_chain.py`` appends);
- ``clusters.py``, ``datasets.py``, ``policies.py``; ``leadership.py``: the lease, its epoch,
  ``check_leader``; ``group_commit.py``: the submissions' group commit; ``combine.py``: the
  heartbeats' combined commits.

The names callers import from this module (``new_job_id``, ``now``, ``ACTIVE_PHASES``, ...) are
re-exported here.
"""

from __future__ import annotations

import threading
from typing import Any

from controller.store.audit import AuditRepo
from controller.store.base import SQLITE_MAX_VARIABLES, StoreBase, now, utc
from controller.store.clusters import ClustersRepo, later_contact
from controller.store.combine import Combiner
from controller.store.cycles import CyclesRepo
from controller.store.datasets import DatasetsRepo
from controller.store.engine import (
    FAILOVER_SQLSTATES,
    JSON_CODEC,
    PG_CONNECT_DEFAULTS,
    RETRY_AFTER_S,
    _failover_is_disconnect,
    make_engine,
    normalise_url,
    store_unavailable,
)
from controller.store.events import EventRef, EventsRepo
from controller.store.group_commit import GroupCommitter
from controller.store.jobs import (
    ACTIVE_PHASES,
    AUDIT_KEY,
    OUTPUT_EVENT,
    Change,
    JobsRepo,
    decode_cursor,
    encode_cursor,
    new_job_id,
)
from controller.store.leadership import LeadershipRepo
from controller.store.policies import PoliciesRepo
from controller.store.retention import RetentionRepo

__all__ = [
    "ACTIVE_PHASES",
    "AUDIT_KEY",
    "FAILOVER_SQLSTATES",
    "JSON_CODEC",
    "OUTPUT_EVENT",
    "PG_CONNECT_DEFAULTS",
    "RETRY_AFTER_S",
    "SQLITE_MAX_VARIABLES",
    "Change",
    "EventRef",
    "GroupCommitter",
    "Store",
    "StoreBase",
    "_failover_is_disconnect",
    "decode_cursor",
    "encode_cursor",
    "make_engine",
    "new_job_id",
    "normalise_url",
    "now",
    "store_unavailable",
    "utc",
]


class Store(
    JobsRepo,
    CyclesRepo,
    EventsRepo,
    AuditRepo,
    ClustersRepo,
    DatasetsRepo,
    PoliciesRepo,
    LeadershipRepo,
    RetentionRepo,
):
    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = url.startswith("sqlite")
        # SQLite allows one writer; serialising writers here avoids busy retries.
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._group_commit: GroupCommitter | None = None
        self._heartbeats = Combiner(self._write_heartbeats, merge=later_contact)
        self._contexts: dict[str, dict[str, Any]] = {}  # decision contexts read (immutable)
        self._frames: dict[str, bytes] = {}  # decision parts' zstd frames read, decompressed (at most 4)
        if migrate:
            from controller.store.migrate import upgrade

            upgrade(self.engine)
