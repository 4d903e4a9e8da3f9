"""Member clusters: their specs, contact (heartbeats), cordon/drain/health state."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import Connection, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from controller.domain.phases import Health
from controller.store import audit_chain
from controller.store import schema as t
from controller.store.base import StoreBase, now, utc
from controller.store.combine import Combiner
from controller.store.records import ClusterRow

# A heartbeat's contact time and the capacity it reported.
Contact = tuple[datetime, dict[str, Any] | None]


def later_contact(a: Contact, b: Contact) -> Contact:
    """Of two heartbeats of one cluster in the same batch, the later one's contact and report."""
    return b if b[0] >= a[0] else a


class ClustersRepo(StoreBase):
    _heartbeats: Combiner[str, Contact]

    def cluster_specs(
        self, conn: Connection, names: Iterable[str], *, lock: Literal["update", "key-share"]
    ) -> dict[str, dict[str, Any]]:
        """The stored specs of the named clusters (those that exist), inside ``conn``'s
        transaction, their rows locked until it ends (PostgreSQL; SQLite's write lock already
        serialises writers). ``update``: a change of the cluster itself (re-registration,
        deregistration) waits for, and makes wait, everything below. ``key-share``: a write that
        relies on the cluster staying what it is (a scheduling cycle placing jobs on it, a data set
        catalogued there); it does not conflict with heartbeats and other plain updates."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        q = (
            select(t.clusters.c.name, t.clusters.c.spec)
            .where(t.clusters.c.name.in_(wanted))
            .order_by(t.clusters.c.name)  # locked in name order, whoever locks several
        )
        q = q.with_for_update() if lock == "update" else q.with_for_update(read=True, key_share=True)
        return {r.name: dict(r.spec) if isinstance(r.spec, dict) else {} for r in conn.execute(q)}

    def upsert_cluster(self, conn: Connection, name: str, spec: dict[str, Any], *, exists: bool) -> None:
        """Create (``exists`` False) or replace a cluster's spec in ``conn``'s transaction; keeps
        cordon/health state."""
        if exists:
            conn.execute(update(t.clusters).where(t.clusters.c.name == name).values(spec=spec))
            return
        conn.execute(
            insert(t.clusters).values(
                name=name,
                spec=spec,
                cordoned=False,
                draining=False,
                health="Unknown",
                registered_at=now(),
            )
        )

    def insert_missing_clusters(self, specs: dict[str, dict[str, Any]]) -> int:
        """Seed clusters from the topology in one transaction; existing ones are left as they are.
        Another process seeding at the same time makes the first try fail on PostgreSQL; the
        second sees its rows."""
        try:
            return self._insert_missing_clusters(specs)
        except IntegrityError:
            return self._insert_missing_clusters(specs)

    def _insert_missing_clusters(self, specs: dict[str, dict[str, Any]]) -> int:
        with self.tx() as conn:
            have = {r[0] for r in conn.execute(select(t.clusters.c.name)).all()}
            rows = [
                {
                    "name": n,
                    "spec": spec,
                    "cordoned": False,
                    "draining": False,
                    "health": "Unknown",
                    "registered_at": now(),
                }
                for n, spec in specs.items()
                if n not in have
            ]
            if rows:
                conn.execute(insert(t.clusters), rows)
            return len(rows)

    def heartbeat(self, name: str, reported: dict[str, Any] | None, at: datetime) -> None:
        """Mark the cluster Ready with its last contact and reported capacity. The lease of its
        attempts is the cluster's (counted from this contact), so no job row is written.
        Concurrent heartbeats commit together (``Combiner``): each returns once a transaction
        holding it committed, and a federation's renewals cost a transaction for all that
        arrived during the previous one, not one each (one at a time, heartbeats were SQLite's
        busiest writer and queued behind each other for its write lock)."""
        self._heartbeats.put(name, (at, reported))

    def _write_heartbeats(self, batch: dict[str, Contact]) -> None:
        stmt = (
            update(t.clusters)
            .where(t.clusters.c.name == bindparam("b_name"))
            .values(health="Ready", last_heartbeat=bindparam("b_at"), reported=bindparam("b_reported"))
        )
        params = [
            {"b_name": name, "b_at": at, "b_reported": reported}
            for name, (at, reported) in sorted(batch.items())  # in key order, as every bulk write
        ]
        with self.tx() as conn:
            conn.execute(stmt, params)

    def touch_cluster(self, conn: Connection, name: str, at: datetime) -> None:
        """A contact other than a heartbeat (a batch of status reports): Ready, last contact."""
        conn.execute(
            update(t.clusters).where(t.clusters.c.name == name).values(health="Ready", last_heartbeat=at)
        )

    def cluster_contact_for_update(self, conn: Connection, name: str) -> datetime | None:
        """The cluster's last contact, its row locked until ``conn`` commits: a heartbeat or a
        report (which update that row) is ordered entirely before or after the caller."""
        row = conn.execute(
            select(t.clusters.c.last_heartbeat).where(t.clusters.c.name == name).with_for_update()
        ).first()
        return utc(row[0]) if row is not None else None

    def delete_cluster(self, conn: Connection, name: str) -> bool:
        return bool(conn.execute(delete(t.clusters).where(t.clusters.c.name == name)).rowcount)

    def list_clusters(self) -> list[ClusterRow]:
        with self.read() as conn:
            return [cast(ClusterRow, dict(r)) for r in conn.execute(select(t.clusters)).mappings().all()]

    def update_cluster(self, name: str, *, audit: dict[str, Any] | None = None, **values: Any) -> bool:
        """Set columns of a cluster's row; ``audit``: the change's audit row, appended in the same
        transaction when the cluster exists. False when it does not."""
        with self.tx() as conn:
            changed = self.set_cluster(conn, name, **values)
            if changed:
                audit_chain.record(conn, audit)
            return changed

    def set_cluster(self, conn: Connection, name: str, **values: Any) -> bool:
        res = conn.execute(update(t.clusters).where(t.clusters.c.name == name).values(**values))
        return bool(res.rowcount)

    def mark_unreachable(self, conn: Connection, name: str, seen: datetime | None) -> bool:
        """The cluster Unreachable, unless a contact later than ``seen`` (the last one the caller
        judged too old) has committed meanwhile: a heartbeat that lands between the judgement
        and this write keeps the cluster Ready. Whether it was marked."""
        c = t.clusters.c
        unrenewed = (
            c.last_heartbeat.is_(None)
            if seen is None
            else or_(c.last_heartbeat.is_(None), c.last_heartbeat <= seen)
        )
        res = conn.execute(
            update(t.clusters).where(c.name == name, unrenewed).values(health=Health.Unreachable)
        )
        return bool(res.rowcount)
