"""The security tables' reads and writes: API tokens, data-set grants and the audit log.

``controller.security`` (the services layer: who may do what, the token and grant cache) keeps
no SQL of its own; it calls this repository, which returns plain rows (dicts) and writes every
change with its audit row in one transaction (``audit_chain``), as every write of the store does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from controller.domain.phases import JobPhase
from controller.store import audit_chain
from controller.store import schema as t
from controller.store.base import pairs_joined
from controller.store.jobs import Change
from controller.store.store import Store, new_job_id

APPROVED = "approved"
REJECTED = "rejected"
# The audit actions of a grant's decision (``Security.decide_grant`` writes them; the
# scheduling cycle's ``grants_marker`` reads the newest)
GRANT_APPROVED = "grant.approved"
GRANT_REJECTED = "grant.rejected"


def withdrawn_message(tenant: str, datasets: Sequence[str]) -> str:
    """Why a job that had not started fails when its tenant's grant was withdrawn (here, and
    in the scheduling cycle's check before placing: ``SchedulingService.ungranted``)."""
    return (
        f"not started: tenant {tenant!r} no longer holds an approved grant for data set(s) "
        f"{', '.join(repr(d) for d in datasets)} (withdrawn after the job was submitted)"
    )


def withdrawn_placed_message(tenant: str, dataset_id: str, running: bool) -> str:
    """Why a placed job (Scheduled, or Running) stopped when its tenant's grant was withdrawn."""
    when = "while the job ran" if running else "after the job was placed, before it was reported running"
    return (
        f"stopped: tenant {tenant!r} no longer holds an approved grant for data set {dataset_id!r} "
        f"(withdrawn by its owner {when})"
    )


class SecurityStore:
    """Tokens, grants and the audit log over one ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- tokens -------------------------------------------------------------------------------
    def token(self, token_id: str) -> dict[str, Any] | None:
        with self.store.read() as conn:
            row = conn.execute(select(t.api_tokens).where(t.api_tokens.c.id == token_id)).mappings().first()
        return dict(row) if row is not None else None

    def insert_token(self, row: dict[str, Any], audit: dict[str, Any]) -> None:
        with self.store.tx() as conn:
            conn.execute(insert(t.api_tokens).values(**row))
            audit_chain.append(conn, [audit])

    def tokens(self) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = conn.execute(select(t.api_tokens).order_by(t.api_tokens.c.created_at)).mappings().all()
        return [dict(r) for r in rows]

    def revoke_token(self, token_id: str, at: datetime, audit: dict[str, Any]) -> bool | None:
        """None: no such token; True: revoked now (with its audit row); False: already revoked."""
        with self.store.tx() as conn:
            row = conn.execute(select(t.api_tokens).where(t.api_tokens.c.id == token_id)).first()
            if row is None:
                return None
            if row.revoked_at is not None:
                return False
            conn.execute(update(t.api_tokens).where(t.api_tokens.c.id == token_id).values(revoked_at=at))
            audit_chain.append(conn, [audit])
            return True

    # ---- data-set grants ----------------------------------------------------------------------
    def approved_datasets(self, tenant: str) -> frozenset[str]:
        """The data sets ``tenant`` holds an approved grant for."""
        q = select(t.dataset_grants.c.dataset_id).where(
            t.dataset_grants.c.tenant == tenant, t.dataset_grants.c.status == APPROVED
        )
        with self.store.read() as conn:
            return frozenset(r[0] for r in conn.execute(q))

    def grants_marker(self) -> int:
        """The id of the newest audit row of a grant decision (0: none): every approval and
        withdrawal writes one in its own transaction, and audit rows take their ids in commit
        order (``audit_chain``: appended under the chain's lock), so the grants decided have not
        changed while this has not. Each action's newest row is the end of its index range."""
        a = t.audit_log.c
        with self.store.read() as conn:
            return max(
                int(conn.execute(select(func.max(a.id)).where(a.action == action)).scalar() or 0)
                for action in (GRANT_APPROVED, GRANT_REJECTED)
            )

    def approved_pairs(self, wanted: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (tenant, data set) pairs among ``wanted`` with an approved grant, for a
        scheduling cycle's reads of other owners' data: the pairs go as a VALUES list joined to
        the grants on their (data set, tenant) unique index, one statement per 1,000 (so each
        pair is one index probe, whatever the number of grants; a ``tenant IN (...) AND
        dataset_id IN (...)`` probed every combination of the two lists)."""
        select_from = (
            "SELECT g.tenant, g.dataset_id FROM wanted JOIN dataset_grants g "
            f"ON g.tenant = wanted.a AND g.dataset_id = wanted.b WHERE g.status = '{APPROVED}'"
        )
        with self.store.read() as conn:
            return {(r[0], r[1]) for r in pairs_joined(conn, sorted(wanted), select_from)}

    def request_grant(
        self, dataset_id: str, tenant: str, fresh: dict[str, Any], audit: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Create the (dataset, tenant) grant with the ``fresh`` fields, or ask again for a
        rejected one; a pending or approved grant comes back as it is (created=False). The audit
        row gets the grant's id in its detail."""
        g = t.dataset_grants.c
        where = (g.dataset_id == dataset_id, g.tenant == tenant)
        try:
            with self.store.tx() as conn:
                row = conn.execute(select(t.dataset_grants).where(*where)).mappings().first()
                if row is not None and row["status"] != REJECTED:
                    return dict(row), False
                if row is None:
                    conn.execute(
                        insert(t.dataset_grants).values(
                            id=new_job_id(), dataset_id=dataset_id, tenant=tenant, **fresh
                        )
                    )
                else:
                    conn.execute(update(t.dataset_grants).where(*where).values(**fresh))
                stored = conn.execute(select(t.dataset_grants).where(*where)).mappings().one()
                audit_chain.append(conn, [{**audit, "detail": {**audit["detail"], "grant": stored["id"]}}])
        except IntegrityError:  # a concurrent request created it first
            with self.store.read() as conn:
                return dict(conn.execute(select(t.dataset_grants).where(*where)).mappings().one()), False
        return dict(stored), True

    def grants_of(self, dataset_id: str, tenant: str | None = None) -> list[dict[str, Any]]:
        """The data set's grants by id; only ``tenant``'s when given."""
        q = select(t.dataset_grants).where(t.dataset_grants.c.dataset_id == dataset_id)
        if tenant is not None:
            q = q.where(t.dataset_grants.c.tenant == tenant)
        with self.store.read() as conn:
            return [dict(r) for r in conn.execute(q.order_by(t.dataset_grants.c.id)).mappings().all()]

    def grants_overview(self, status: str | None, limit: int, tenant: str | None) -> list[dict[str, Any]]:
        """Grants with their data set's owner and classification, newest request first; with
        ``tenant``, those it asked for and those on data sets it owns."""
        g, d = t.dataset_grants.c, t.datasets.c
        q = (
            select(t.dataset_grants, d.owner.label("dataset_owner"), d.classification)
            .join(t.datasets, d.id == g.dataset_id)
            .order_by(g.requested_at.desc(), g.id.desc())
            .limit(limit)
        )
        if status is not None:
            q = q.where(g.status == status)
        if tenant is not None:
            q = q.where((g.tenant == tenant) | (d.owner == tenant))
        with self.store.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings().all()]

    def decide_grant(
        self,
        dataset_id: str,
        grant_id: str,
        status: str,
        by: str,
        at: datetime,
        audit: Callable[[str], dict[str, Any]],
    ) -> dict[str, Any] | None:
        """Set the grant's status (with ``audit(grantee)``'s row when it changes); the grant as
        stored after, or None when the data set has no such grant. An approved grant rejected
        (withdrawn) stops the grantee's unfinished jobs reading the data set in the same
        transaction (``_stop_readers``; their number in the audit row): ``stopped`` in the
        answer, job id -> the phase each was left in."""
        where = (t.dataset_grants.c.id == grant_id, t.dataset_grants.c.dataset_id == dataset_id)
        with self.store.tx() as conn:
            row = conn.execute(select(t.dataset_grants).where(*where)).mappings().first()
            if row is None:
                return None
            stopped: dict[str, str] = {}
            if row["status"] != status:
                conn.execute(
                    update(t.dataset_grants).where(*where).values(status=status, decided_by=by, decided_at=at)
                )
                if row["status"] == APPROVED and status == REJECTED:
                    stopped = self._stop_readers(conn, row["tenant"], dataset_id)
                audit_chain.record(
                    conn, audit(row["tenant"]), **({"stopped_jobs": len(stopped)} if stopped else {})
                )
            out = dict(conn.execute(select(t.dataset_grants).where(*where)).mappings().one())
        return {**out, "stopped": stopped}

    def _stop_readers(self, conn: Connection, tenant: str, dataset_id: str) -> dict[str, str]:
        """A grant withdrawn: in its transaction, every job of the grantee that reads the data
        set and has not finished stops (a (data set, tenant) pair has one grant row, so no other
        approval covers them). Not started (Pending, or Scheduled: its agent has not reported it
        running) it fails; running it is cancelled, and its agent, no longer finding the
        attempt among its assignments, stops it. Their rows are read locked and changed in two
        statements (``transition_many``). Job id -> the phase it is left in."""
        changes = []
        for job_id, phase, attempt, cluster in self.store.unfinished_reading(conn, tenant, dataset_id):
            running = phase == JobPhase.Running.value
            to = JobPhase.Cancelled if running else JobPhase.Failed
            message = (
                withdrawn_message(tenant, [dataset_id])
                if phase == JobPhase.Pending.value
                else withdrawn_placed_message(tenant, dataset_id, running)
            )
            changes.append(
                Change(job_id, phase, attempt, to.value, message, True, cluster, to.value, message)
            )
        self.store.transition_many(conn, changes)
        return {c.job_id: c.phase for c in changes}

    # ---- audit log ----------------------------------------------------------------------------
    def audit_rows(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        after: int | None = None,
        target: str | None = None,
        newest_first: bool = False,
        exclude_action: str | None = None,
    ) -> list[dict[str, Any]]:
        """Oldest first (``after``: ids above it), or newest first (``after``: ids below it)."""
        a = t.audit_log.c
        q = select(t.audit_log).order_by(a.id.desc() if newest_first else a.id).limit(limit)
        if actor:
            q = q.where(a.actor == actor)
        if action:
            q = q.where(a.action == action)
        if target:
            q = q.where(a.target == target)
        if exclude_action:
            q = q.where(a.action != exclude_action)
        if since:
            since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
            q = q.where(a.at >= since)
        if after is not None:
            q = q.where(a.id < after if newest_first else a.id > after)
        with self.store.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings().all()]
