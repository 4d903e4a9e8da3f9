"""Job events as a change feed (what another controller process changed) and as history
(where jobs ran, what happened lately); the console's aggregate reads over jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select

from controller.store import schema as t
from controller.store.base import StoreBase, utc
from controller.store.jobs import ACTIVE_PHASES, OUTPUT_EVENT


class EventRef(NamedTuple):
    id: int
    job_id: str
    type: str
    to_phase: str | None
    cluster: str | None
    attempt: int


class EventsRepo(StoreBase):
    def max_event_id(self) -> int:
        with self.read() as conn:
            return int(conn.execute(select(func.max(t.job_events.c.id))).scalar() or 0)

    def events_after(self, after: int, also: Sequence[int] = ()) -> list[EventRef]:
        """The job events with an id above ``after``, plus those in ``also`` (ids a reader saw
        missing earlier: under PostgreSQL a transaction that took a lower id may commit after
        one with a higher id), in id order, as (id, job id, type, to phase, cluster, attempt)."""
        e = t.job_events.c
        cols = (e.id, e.job_id, e.type, e.to_phase, e.cluster, e.attempt)
        with self.read() as conn:
            rows = [EventRef(*r) for r in conn.execute(select(*cols).where(e.id > after).order_by(e.id))]
            extra = list(also)
            for k in range(0, len(extra), 500):
                q = select(*cols).where(e.id.in_(extra[k : k + 500]))
                rows.extend(EventRef(*r) for r in conn.execute(q))
        rows.sort()
        return rows

    def last_placed_clusters(self, job_ids: Sequence[str]) -> dict[str, str]:
        """job id -> the cluster of its latest event that named one (where a re-queued job ran
        before it was sent back to Pending; the failover origin)."""
        out: dict[str, str] = {}
        ids = list(job_ids)
        with self.read() as conn:
            for k in range(0, len(ids), 500):
                q = (
                    select(t.job_events.c.job_id, t.job_events.c.cluster)
                    .where(t.job_events.c.job_id.in_(ids[k : k + 500]), t.job_events.c.cluster.is_not(None))
                    .order_by(t.job_events.c.id)
                )
                for row in conn.execute(q):
                    out[row.job_id] = row.cluster
        return out

    def recent_events(self, types: Sequence[str], since: datetime, limit: int = 2000) -> list[dict[str, Any]]:
        """The newest events of the given types since ``since`` (newest first, at most
        ``limit``), with their job's tenant: id, job_id, type, at, attempt, reason, tenant."""
        e = t.job_events.c
        q = (
            select(e.id, e.job_id, e.type, e.at, e.attempt, e.reason, t.jobs.c.tenant)
            .join(t.jobs, t.jobs.c.id == e.job_id)
            .where(e.type.in_(list(types)), e.at >= since)
            .order_by(e.id.desc())
            .limit(limit)
        )
        with self.read() as conn:
            return [{**dict(r), "at": utc(r["at"])} for r in conn.execute(q).mappings()]

    def placed_events(self, job_ids: Sequence[str]) -> dict[str, list[tuple[int, str, str, int]]]:
        """job id -> its events that name a cluster, in order: (event id, type, cluster, attempt)."""
        e = t.job_events.c
        out: dict[str, list[tuple[int, str, str, int]]] = {}
        ids = list(dict.fromkeys(job_ids))
        with self.read() as conn:
            for k in range(0, len(ids), 500):
                q = (
                    select(e.job_id, e.id, e.type, e.cluster, e.attempt)
                    .where(e.job_id.in_(ids[k : k + 500]), e.cluster.is_not(None), e.type != OUTPUT_EVENT)
                    .order_by(e.id)
                )
                for job_id, ev_id, typ, cluster, attempt in conn.execute(q):
                    out.setdefault(str(job_id), []).append((int(ev_id), str(typ), str(cluster), int(attempt)))
        return out

    def active_counts_by_cluster(self) -> dict[str, dict[str, int]]:
        """cluster -> {phase: count} of its Scheduled and Running jobs."""
        j = t.jobs.c
        q = (
            select(j.cluster, j.phase, func.count())
            .where(j.phase.in_(ACTIVE_PHASES), j.cluster.is_not(None))
            .group_by(j.cluster, j.phase)
        )
        out: dict[str, dict[str, int]] = {}
        with self.read() as conn:
            for cluster, phase, n in conn.execute(q):
                out.setdefault(str(cluster), {})[str(phase)] = int(n)
        return out

    def counts_by_tenant(self) -> dict[str, dict[str, Any]]:
        """tenant -> {phase: count} of its Pending, Scheduled and Running jobs, and
        ``oldest_pending`` (the creation time of its oldest Pending job)."""
        j = t.jobs.c
        out: dict[str, dict[str, Any]] = {}
        with self.read() as conn:
            q = (
                select(j.tenant, j.phase, func.count())
                .where(j.phase.in_(("Pending", *ACTIVE_PHASES)))
                .group_by(j.tenant, j.phase)
            )
            for tenant, phase, n in conn.execute(q):
                out.setdefault(str(tenant), {})[str(phase)] = int(n)
            oldest = select(j.tenant, func.min(j.created_at)).where(j.phase == "Pending").group_by(j.tenant)
            for tenant, at in conn.execute(oldest):
                out.setdefault(str(tenant), {})["oldest_pending"] = utc(at)
        return out
