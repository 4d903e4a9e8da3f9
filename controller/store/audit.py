"""Reads of the audit log for the change feed (rows are appended by ``audit_chain``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from controller.store import schema as t
from controller.store.base import StoreBase


class AuditRepo(StoreBase):
    def max_audit_id(self) -> int:
        with self.read() as conn:
            return int(conn.execute(select(func.max(t.audit_log.c.id))).scalar() or 0)

    def audit_after(self, after: int, actions: Sequence[str]) -> tuple[int, list[tuple[int, str, str, Any]]]:
        """The highest audit id now, and the audit rows with an id above ``after`` (up to it)
        whose action is one of ``actions``, as (id, action, target, detail), in id order (audit
        rows are appended under a lock held to commit, so ids commit in order). The caller
        continues from the highest id, not from its last match: the rows in between (mostly
        placements) are not scanned again at every sync."""
        a = t.audit_log.c
        with self.read() as conn:
            top = int(conn.execute(select(func.max(a.id))).scalar() or 0)
            if top <= after:
                return after, []
            q = (
                select(a.id, a.action, a.target, a.detail)
                .where(a.action.in_(list(actions)), a.id > after, a.id <= top)
                .order_by(a.id)
            )
            return top, [(int(r[0]), r[1], r[2], r[3]) for r in conn.execute(q)]
