"""The job state machine: phases, the reasons a phase changes, cluster health, and the one rule
table every phase change is checked against.

Every write of a job's phase goes through ``transition`` (the store calls it under the job's row
lock, for single changes, a scheduling cycle's bulk writes and new jobs alike); an illegal change
raises ``IllegalTransition``, a ``Conflict`` answered as 409 problem+json wherever it comes from.
The enums are ``str``-valued, so the strings stored in the database and sent as JSON are the same
as before they existed.

Modelled on Prefect's orchestration rules (a rule names the states it applies from and to); here
a rule is the pair (from phase, to phase) and the reasons that may cause it, so a Preempted event
can only send an active job back to the queue, never finish it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from controller.errors import IllegalTransition


class JobPhase(StrEnum):
    Pending = "Pending"
    Scheduled = "Scheduled"
    Running = "Running"
    Succeeded = "Succeeded"
    Failed = "Failed"
    Cancelled = "Cancelled"

    def is_terminal(self) -> bool:
        return self in TERMINAL

    def can_become(self, target: JobPhase) -> bool:
        return (self, target) in RULES


class Reason(StrEnum):
    """Why a job changed: the type of the event written with the change."""

    Submitted = "Submitted"  # a new job, into the queue
    Scheduled = "Scheduled"  # placed by a scheduling cycle
    Running = "Running"  # reported by its agent
    Succeeded = "Succeeded"
    Failed = "Failed"
    Cancelled = "Cancelled"  # by request
    Preempted = "Preempted"  # by a higher-priority job, back to the queue as the next attempt
    Drained = "Drained"  # its cluster was drained
    LeaseExpired = "LeaseExpired"  # its cluster went silent for longer than the lease
    Released = "Released"  # its agent gave the attempt back


class EventType(StrEnum):
    """Events that record something about a job without changing its phase."""

    FencedReport = "FencedReport"  # a report of an attempt that is no longer current, refused
    Output = "Output"  # an executor's output for an attempt


class Health(StrEnum):
    """A member cluster's health as the controller sees it."""

    Unknown = "Unknown"  # registered, no heartbeat yet
    Ready = "Ready"
    Unreachable = "Unreachable"  # missed heartbeats for longer than the grace period


TERMINAL = frozenset({JobPhase.Succeeded, JobPhase.Failed, JobPhase.Cancelled})
ACTIVE = frozenset({JobPhase.Scheduled, JobPhase.Running})

_REQUEUE = frozenset({Reason.Preempted, Reason.Drained, Reason.LeaseExpired, Reason.Released})
P = JobPhase
# (from, to) -> the reasons that may cause it; from None is a new job. Anything else is illegal.
RULES: dict[tuple[JobPhase | None, JobPhase], frozenset[Reason]] = {
    (None, P.Pending): frozenset({Reason.Submitted}),
    (P.Pending, P.Scheduled): frozenset({Reason.Scheduled}),
    (P.Pending, P.Cancelled): frozenset({Reason.Cancelled}),
    (P.Pending, P.Failed): frozenset({Reason.Failed}),
    (P.Scheduled, P.Running): frozenset({Reason.Running}),
    (P.Scheduled, P.Succeeded): frozenset({Reason.Succeeded}),  # finished before its Running report
    (P.Scheduled, P.Failed): frozenset({Reason.Failed}),
    (P.Scheduled, P.Cancelled): frozenset({Reason.Cancelled}),
    (P.Scheduled, P.Pending): _REQUEUE,  # its attempt is raised
    (P.Running, P.Succeeded): frozenset({Reason.Succeeded}),
    (P.Running, P.Failed): frozenset({Reason.Failed}),
    (P.Running, P.Cancelled): frozenset({Reason.Cancelled}),
    (P.Running, P.Pending): _REQUEUE,
}
del P

# The old shape of the table (phase -> the phases it may become), for readers of it.
TRANSITIONS: dict[JobPhase, frozenset[JobPhase]] = {
    p: frozenset(to for (frm, to) in RULES if frm == p) for p in JobPhase
}


def transition(job_id: str, current: str | None, target: str, reason: str | None = None) -> JobPhase:
    """Check one phase change against the rule table; the target phase, or ``IllegalTransition``.
    ``current`` None: the job is new. ``reason`` (the event type): when given, it must be one
    the rule allows for this pair."""
    try:
        frm = JobPhase(current) if current is not None else None
        to = JobPhase(target)
    except ValueError:
        raise IllegalTransition(f"job {job_id}: unknown phase {current!r} or {target!r}") from None
    allowed = RULES.get((frm, to))
    if allowed is None:
        origin = frm.value if frm is not None else "nothing (a new job)"
        raise IllegalTransition(f"job {job_id} cannot go from {origin} to {to.value}")
    if reason is not None and reason not in allowed:
        raise IllegalTransition(
            f"job {job_id} cannot go from {frm.value if frm else 'nothing'} to {to.value} "
            f"by {reason!r} (allowed: {', '.join(sorted(allowed))})"
        )
    return to


def check_transition(job_id: str, current: JobPhase, target: JobPhase) -> None:
    """``transition`` for callers that check before they write (cancel, reports)."""
    transition(job_id, current, target)


def requeue_values(attempt: int, message: str) -> dict[str, Any]:
    """A job's row back in the queue: Pending, off its cluster, as the next attempt."""
    return {
        "phase": JobPhase.Pending.value,
        "cluster": None,
        "attempt": attempt + 1,
        "message": message,
        "lease_expires_at": None,
    }
