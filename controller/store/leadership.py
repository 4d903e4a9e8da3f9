"""The leader lease and its epoch (the fencing token), and the check that fences a leader's writes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from controller.errors import StaleLeader
from controller.store import schema as t
from controller.store.base import StoreBase, now, utc


class LeadershipRepo(StoreBase):
    def acquire_leadership(self, holder: str, ttl_s: float) -> int | None:
        """Take or renew the leader lease. A new holder raises the epoch (fencing token).
        Returns the epoch held, or None while another holder's lease is live."""
        with self.tx() as conn:
            t_now = now()
            row = conn.execute(select(t.leader).where(t.leader.c.id == 1).with_for_update()).first()
            expires = t_now + timedelta(seconds=ttl_s)
            if row is None:
                try:
                    conn.execute(insert(t.leader).values(id=1, holder=holder, epoch=1, expires_at=expires))
                except IntegrityError:
                    return None
                return 1
            if row.holder == holder and utc(row.expires_at) > t_now:  # type: ignore[operator]
                conn.execute(update(t.leader).where(t.leader.c.id == 1).values(expires_at=expires))
                return int(row.epoch)
            if utc(row.expires_at) > t_now:  # type: ignore[operator]
                return None
            epoch = int(row.epoch) + 1
            res = conn.execute(
                update(t.leader)
                .where(t.leader.c.id == 1, t.leader.c.epoch == row.epoch)
                .values(holder=holder, epoch=epoch, expires_at=expires)
            )
            return epoch if res.rowcount == 1 else None

    def check_leader(self, conn: Connection, epoch: int) -> None:
        """Fencing: inside a leader's write transaction, refuse the write unless ``epoch`` is still
        the current leader epoch and its lease has not ended (StaleLeader rolls it back). Under
        PostgreSQL the leader row is locked (FOR SHARE), so a successor cannot take the lease
        between this check and the commit; under SQLite the write lock does the same."""
        row = conn.execute(
            select(t.leader.c.epoch, t.leader.c.expires_at)
            .where(t.leader.c.id == 1)
            .with_for_update(read=True)
        ).first()
        if row is None or int(row.epoch) != epoch or epoch <= 0:
            raise StaleLeader(
                f"leader epoch {epoch} is not current (the store has {row.epoch if row else 0})"
            )
        if utc(row.expires_at) <= now():  # type: ignore[operator]
            raise StaleLeader(f"the lease of leader epoch {epoch} has ended")

    def leader_epoch(self) -> int:
        with self.read() as conn:
            row = conn.execute(select(t.leader.c.epoch).where(t.leader.c.id == 1)).first()
            return int(row[0]) if row else 0
