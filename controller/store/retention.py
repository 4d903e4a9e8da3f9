"""Retention: finished jobs, with their events and stored decisions, deleted once they are older
than the retention period, and the decision parts no remaining decision names.

A federation that runs millions of jobs would otherwise grow its database without bound (about
0.6 KB of decision a job, its events, its spec). What goes:

- a job in a final phase (Succeeded, Failed, Cancelled) whose row last changed before the
  cutoff, with its events and its decisions (``prune_finished``), in transactions of ``batch``
  jobs, so that no transaction holds SQLite's write lock for long;
- a cycle's packed columns and explanations (``decision_parts`` rows with bytes) written before
  the cutoff less ``PART_MARGIN`` that no remaining decision names (``prune_parts``). A part is
  written in its cycle's transaction with the decisions that name it, so only decisions of jobs
  submitted before the part was written can name it: the remaining jobs submitted before the
  cutoff (job ids begin with their submission time), which after the jobs' pass are the long
  runners and the long waiters, are the only ones whose decisions are read. The margin covers
  clocks of other hosts that submitted jobs. The contexts (cluster names, plugins: a handful of
  rows named by digest, shared by every cycle since) are kept.

What stays: every job not finished, and every job finished since the cutoff, whole; the audit
log (append-only and hash-chained: it records who did what, the placements included, and is
never pruned). An Idempotency-Key is remembered as long as its job is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select

from controller.domain.phases import TERMINAL
from controller.store import schema as t
from controller.store.base import StoreBase

FINAL = sorted(p.value for p in TERMINAL)
PART_MARGIN = timedelta(days=1)  # parts kept past the cutoff (other hosts' clocks)


def id_before(at: datetime) -> str:
    """The smallest job id of a job submitted at ``at`` or later (``new_job_id``: 14 hex digits
    of microseconds first): every id below it was submitted before ``at``."""
    return f"{int(at.timestamp() * 1_000_000):014x}"


class RetentionRepo(StoreBase):
    def prune_finished(self, before: datetime, *, batch: int = 200, limit: int = 2_000) -> dict[str, int]:
        """Delete up to ``limit`` jobs finished before ``before`` (oldest submitted first), with
        their events and decisions, ``batch`` jobs a transaction; the numbers deleted."""
        cut = id_before(before)
        j = t.jobs.c
        out = {"jobs": 0, "events": 0, "decisions": 0}
        after = ""  # the pass reads the id range once, kept jobs included
        while out["jobs"] < limit:
            with self.tx() as conn:
                # Through the primary key's index, in id order from ``after``: the phase as an
                # expression (``|| ''``), or SQLite reads every finished job through the phase's
                # index and sorts them all, each transaction
                q = (
                    select(j.id)
                    .where(j.id > after, j.id < cut, j.updated_at < before, (j.phase + "").in_(FINAL))
                    .order_by(j.id)
                    .limit(min(batch, limit - out["jobs"]))
                )
                if not self.is_sqlite:
                    q = q.with_for_update(skip_locked=True)
                ids = [r[0] for r in conn.execute(q)]
                if not ids:
                    break
                after = ids[-1]
                out["decisions"] += self._delete_by_job(conn, t.decisions, ids)
                out["events"] += self._delete_by_job(conn, t.job_events, ids)
                # final phases have no way out (the rule table), so these rows are still final
                gone = conn.execute(delete(t.jobs).where(j.id.in_(ids), j.phase.in_(FINAL)))
                out["jobs"] += int(gone.rowcount)
            if len(ids) < batch:
                break
        return out

    @staticmethod
    def _delete_by_job(conn: Connection, table: Any, ids: Sequence[str]) -> int:
        return int(conn.execute(delete(table).where(table.c.job_id.in_(ids))).rowcount)

    def prune_parts(self, before: datetime) -> int:
        """Delete the decision parts with bytes (a cycle's packed columns and explanations)
        written before ``before - PART_MARGIN`` that no remaining decision names; how many."""
        until = before - PART_MARGIN
        p = t.decision_parts.c
        with self.read() as conn:
            old = [r[0] for r in conn.execute(select(p.key).where(p.data.is_not(None), p.created_at < until))]
            if not old:
                return 0
            named = self._named_parts(conn, id_before(before))
        unused = [k for k in old if k not in named]
        deleted = 0
        for k in range(0, len(unused), 500):
            with self.tx() as conn:
                # a part is named only by decisions of its own cycle, long committed: nothing
                # written from now on names one of these
                deleted += int(
                    conn.execute(delete(t.decision_parts).where(p.key.in_(unused[k : k + 500]))).rowcount
                )
        return deleted

    @staticmethod
    def _named_parts(conn: Connection, cut: str) -> set[str]:
        """The parts named by the decisions of the jobs submitted before ``cut`` (an id)."""
        d = t.decisions.c
        q = select(d.body).join(t.jobs, t.jobs.c.id == d.job_id).where(t.jobs.c.id < cut)
        named: set[str] = set()
        for (body,) in conn.execute(q):
            for ref in (body.get("blob"), body.get("why")):
                if isinstance(ref, list) and ref:
                    named.add(str(ref[0]))
        return named
