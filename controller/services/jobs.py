"""Job queries and cancel: a job read back from the store (with its events), its last output,
the list, the latest scheduling decision, and cancel (a compare-and-set from whatever phase the
job is in, retried a bounded number of times, its audit row in the same transaction).

Dependencies: the store, the controller's lock, the cluster registry (a cancelled job's
reservation leaves the ledger) and the read model (its noted terms go)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from controller.domain.phases import JobPhase, Reason, check_transition
from controller.errors import Conflict, NotFound
from controller.jobs import JobEvent, JobRead, stored_spec
from controller.registry import Registry
from controller.scheduler.decision import Decision
from controller.services.read_model import ReadModel
from controller.store import audit_chain
from controller.store.store import Store, utc

CANCEL_TRIES = 8


class JobQueries:
    def __init__(
        self, store: Store, lock: threading.RLock, registry: Registry, read_model: ReadModel
    ) -> None:
        self.store = store
        self.lock = lock
        self.registry = registry
        self.read_model = read_model

    def job_read(self, row: Mapping[str, Any], *, with_events: bool) -> JobRead:
        events = (
            [JobEvent.model_validate({**e, "at": utc(e["at"])}) for e in self.store.job_events(row["id"])]
            if with_events
            else []
        )
        return JobRead(
            id=row["id"],
            spec=stored_spec(row["spec"]),
            phase=JobPhase(row["phase"]),
            cluster=row["cluster"],
            attempt=row["attempt"],
            epoch=row["epoch"] or 0,
            created_at=utc(row["created_at"]),
            updated_at=utc(row["updated_at"]),
            message=row["message"] or "",
            events=events,
        )

    def get_job(self, job_id: str) -> JobRead:
        row = self.store.get_job(job_id)
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        return self.job_read(row, with_events=True)

    def job_logs(self, job_id: str) -> dict[str, Any]:
        """The output the executor last reported for the job (the local executor: the tail of the
        attempt's stdout and stderr, sent when it ends)."""
        row = self.store.get_job(job_id)
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        out = self.store.job_output(job_id)
        return {
            "job_id": job_id,
            "phase": row["phase"],
            "cluster": out["cluster"] if out else row["cluster"],
            "attempt": out["attempt"] if out else row["attempt"],
            "output": out["reason"] if out else "",
        }

    def list_jobs(self, **filters: Any) -> list[JobRead]:
        return [self.job_read(r, with_events=False) for r in self.store.list_jobs(**filters)]

    def cancel(
        self, job_id: str, reason: str = "cancelled by request", audit: dict[str, Any] | None = None
    ) -> JobRead:
        """Cancel from whatever phase the job is in now. The compare-and-set fails when the job
        changed between the read and the write (placed by a scheduling cycle right after its
        submission, say): that is retried here with the fresh row, a bounded number of times,
        rather than handed to the caller. ``audit``: the caller's audit row, appended in the
        cancel's transaction (both commit or neither)."""
        for _ in range(CANCEL_TRIES):
            row = self.store.get_job(job_id)
            if row is None:
                raise NotFound(f"job {job_id!r} not found")
            phase = JobPhase(row["phase"])
            check_transition(job_id, phase, JobPhase.Cancelled)
            with self.lock:
                with self.store.tx() as conn:
                    ok = self.store.transition(
                        conn,
                        job_id,
                        expect_phases=[phase.value],
                        expect_attempt=row["attempt"],
                        values={"phase": "Cancelled", "message": reason, "lease_expires_at": None},
                        event_type=Reason.Cancelled,
                        reason=reason,
                    )
                    if ok:
                        audit_chain.record(conn, audit)
                if ok:  # committed: now the in-memory views
                    self.registry.ledger.pop(job_id)
                    self.read_model.forget_terms(job_id, JobPhase.Cancelled.value)
                    break
        else:
            raise Conflict(f"job {job_id} kept changing while being cancelled; retry")
        return self.get_job(job_id)

    def forget_stopped(self, phases: Mapping[str, str]) -> None:
        """Jobs another write path stopped (job id -> the phase it left them in, committed):
        their ledger entries and kept terms go, as after a cancel (the follower would do the
        same from their events at its next sync)."""
        if not phases:
            return
        with self.lock:
            for job_id, phase in phases.items():
                self.registry.ledger.pop(job_id)
                self.read_model.forget_terms(job_id, phase)

    def get_decision(self, job_id: str) -> Decision:
        if self.store.get_job(job_id) is None:
            raise NotFound(f"job {job_id!r} not found")
        body = self.store.latest_decision(job_id)
        if body is None:
            raise NotFound(f"job {job_id} has no scheduling decision yet")
        return Decision.model_validate(body)
