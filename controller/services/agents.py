"""The agent protocol, the controller's side: heartbeats (the cluster's lease), the assignments
an agent pulls, the status reports it sends and the attempts it gives back. A report of an
attempt that is no longer current is refused and recorded as a fenced execution.

Dependencies, all explicit: the store, the lock guarding the in-memory views, the cluster
registry (health, the allocation ledger), the failover policy and leader epoch in force, and
the controller's callbacks to note a cluster's health change, forget a finished job's terms,
read a job back and wake the scheduling loop."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from controller.assignments import Assignment, StatusReport
from controller.domain.phases import TERMINAL, JobPhase, Reason, requeue_values
from controller.domain.phases import transition as phase_rule
from controller.errors import NotFound, StaleAttempt, YiwangError
from controller.history import Counters
from controller.jobs import JobCreate, JobRead, stored_spec
from controller.policies import FailoverPolicy
from controller.registry import ClusterState, Health, Registry
from controller.store.store import ACTIVE_PHASES, Change, Store, now

log = logging.getLogger("yiwang.controller")
_KEEP: Any = object()  # ``contact`` without a report: the cluster's last report stays
# Attempts whose serialised assignment is kept (``AssignmentCache``): 814 bytes each on the mixed
# queue, about 1.1 KB with its key and links, so at most about 55 MB
ASSIGNMENT_CACHE = 50_000
_INSTANT: TypeAdapter[datetime] = TypeAdapter(datetime)
_ASSIGNMENTS: TypeAdapter[list[Assignment]] = TypeAdapter(list[Assignment])


def _stored_spec_json(text: str) -> JobCreate:
    """``stored_spec`` of a spec read as JSON text: parsed and validated in one pass, and only
    a spec this version does not accept as stored decoded apart."""
    try:
        return JobCreate.model_validate_json(text)
    except ValidationError:
        return stored_spec(json.loads(text))


def _page_tag(
    epoch: int, cluster: str, after: str | None, limit: int, keys: list[tuple[str, int, int, str]]
) -> str:
    """A listing page's weak ETag (``assignments_page``): what it lists, not its lease."""
    listed = "\n".join([f"{job_id} {attempt} {ep}" for job_id, attempt, ep, _ in keys])
    text = f"{epoch}\n{cluster}\n{after or ''}\n{limit}\n{listed}"
    return 'W/"' + hashlib.blake2b(text.encode(), digest_size=16).hexdigest() + '"'


def _names(if_none_match: str, tag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``tag`` (a list of tags, or ``*``; weak
    comparison: a strong form of the same tag matches too, RFC 9110 13.1.2)."""
    wanted = tag.removeprefix("W/")
    for given in if_none_match.split(","):
        given = given.strip()
        if given == "*" or given.removeprefix("W/") == wanted:
            return True
    return False


class AssignmentCache:
    """Each attempt's assignment serialised without its lease, by (job, attempt, epoch,
    cluster): what ``assignments_json`` joins. Bounded (least recently listed out first) and
    locked (the route's calls run on several threads)."""

    def __init__(self, maxsize: int = ASSIGNMENT_CACHE) -> None:
        self.data: OrderedDict[tuple[str, int, int, str], bytes] = OrderedDict()
        self.maxsize = maxsize
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def entry(a: Assignment) -> bytes:
        """The assignment as a JSON object without ``lease_expires_at`` and its closing brace."""
        return a.model_dump_json(exclude={"lease_expires_at"}).encode()[:-1]

    def get_many(self, keys: list[tuple[str, int, int, str]]) -> list[bytes | None]:
        with self.lock:
            data = self.data
            out = [data.get(k) for k in keys]
            for k, e in zip(keys, out, strict=True):
                if e is not None:
                    data.move_to_end(k)
            found = sum(e is not None for e in out)
            self.hits += found
            self.misses += len(out) - found
            return out

    def put_many(self, entries: dict[tuple[str, int, int, str], bytes]) -> None:
        with self.lock:
            data = self.data
            data.update(entries)
            while len(data) > self.maxsize:
                data.popitem(last=False)


class AgentProtocol:
    def __init__(
        self,
        store: Store,
        lock: threading.RLock,
        registry: Registry,
        counters: Counters,
        *,
        failover: Callable[[], FailoverPolicy],
        epoch: Callable[[], int],
        note_cluster: Callable[[str, ClusterState, str], None],
        forget_terms: Callable[[str, str | None], None],
        get_job: Callable[[str], JobRead],
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self.lock = lock
        self.registry = registry
        self.counters = counters
        self.failover = failover
        self.epoch = epoch
        self.note_cluster = note_cluster
        self.forget_terms = forget_terms
        self.get_job = get_job
        self.wake = wake
        self.fenced_reports = 0  # agents' reports of attempts that were re-placed (refused)
        self.cache = AssignmentCache()

    def cluster_state(self, name: str) -> ClusterState:
        state = self.registry.clusters.get(name)
        if state is None:
            raise NotFound(f"cluster {name!r} not found")
        return state

    def heartbeat_interval_s(self) -> float:
        """How often an agent renews: several renewals fit in the grace and in the lease."""
        pol = self.failover()
        return max(0.1, min(pol.lease_s / 5, pol.heartbeat_grace_s / 3))

    def heartbeat_answer(self, t_now: datetime | None = None) -> dict[str, Any]:
        t_now = t_now or now()
        pol = self.failover()
        return {
            "epoch": self.epoch(),
            "lease_expires_at": t_now + timedelta(seconds=pol.lease_s),
            "lease_s": pol.lease_s,
            "heartbeat_interval_s": self.heartbeat_interval_s(),
        }

    def contact(self, state: ClusterState, at: datetime, reported: Any = _KEEP) -> None:
        """A committed contact in the registry (with the heartbeat's report, when given): not
        under the controller's lock, which a scheduling cycle holds for the whole of its
        evaluation and write (0.5 s and more for 10,000 jobs), so renewals never queue behind a
        cycle; under the registry's contact lock, which the store follower's sync also takes to
        apply the cluster rows it read, keeping a contact newer than the row (without it, a sync
        that read the rows just before this contact committed put the older contact back: a
        cluster that had just renewed showed as not Ready until its next renewal). Each field is
        replaced whole, and health last: who sees the cluster Ready also sees this contact
        (``expire_leases`` reads them unlocked)."""
        with self.registry.contacts:
            if reported is not _KEEP:
                state.reported = reported
            state.last_heartbeat = at
            state.health = Health.Ready

    def heartbeat(self, cluster: str, reported: dict[str, Any] | None) -> dict[str, Any]:
        """The cluster's contact: it is Ready, and its agent holds its attempts for ``lease_s``
        more (the lease is the cluster's, not a job row's: see ``expire_leases``)."""
        state = self.cluster_state(cluster)
        t_now = now()
        was = state.health
        self.store.heartbeat(cluster, reported, t_now)
        self.contact(state, t_now, reported)
        if was != Health.Ready:
            self.note_cluster(cluster, state, "its agent's heartbeat arrived")
            self.wake()
        return self.heartbeat_answer(t_now)

    def assignments(self, cluster: str, *, after: str | None = None, limit: int = 500) -> list[Assignment]:
        """Current attempts placed on the cluster, by job id, one page at a time (``after``: the
        last id of the previous page): the agent starts those it is not running and stops any
        it runs that are not listed (cancelled, drained or re-placed). Only Scheduled and Running
        jobs are read, however many the cluster ran before. (The route answers the same list
        as JSON through ``assignments_json``.)"""
        return _ASSIGNMENTS.validate_json(self.assignments_json(cluster, after=after, limit=limit))

    def assignments_json(self, cluster: str, *, after: str | None = None, limit: int = 500) -> bytes:
        """``assignments`` as the JSON array the route answers (``assignments_page``)."""
        body = self.assignments_page(cluster, after=after, limit=limit)[1]
        assert body is not None  # no tag given: always the page
        return body

    def assignments_page(
        self, cluster: str, *, after: str | None = None, limit: int = 500, if_none_match: str | None = None
    ) -> tuple[str, bytes | None]:
        """One page of the cluster's listing: its tag and the JSON array, or None instead of the
        array when ``if_none_match`` (an ``If-None-Match`` header) names this page's tag.

        The tag (a weak ETag) is a digest of what the page lists: the leader's epoch, the page's
        place (``after``, ``limit``) and each attempt's (job, attempt, epoch). An entry says
        nothing else that can change but the lease, and the lease is the cluster's, which every
        heartbeat and report answer gives (the agent renews by those, not by this list). So an
        agent that sends back the tag of the page it holds gets a 304 and keeps its page while
        nothing was placed on, moved off or finished on its cluster: an idle poll costs the
        leader the page's index read, and the agent and the WAN link between them nothing.

        An agent lists every attempt on its cluster at each poll (every half second): built
        afresh, each was a spec read, parsed and validated, an ``Assignment`` made and
        serialised, about every attempt of the federation twice a second. What an attempt's
        entry says besides the lease never changes for its (job, attempt, epoch, cluster) (a spec
        is immutable; a re-placement is a new attempt), so each entry is kept serialised
        (``AssignmentCache``, bounded) and a poll reads the page's ids and the specs of the
        attempts it has not seen, then joins the entries with this poll's lease."""
        state = self.cluster_state(cluster)
        lease_until = (state.last_heartbeat or now()) + timedelta(seconds=self.failover().lease_s)
        rows = self.store.active_attempts(cluster, after, limit)  # (id, tenant, phase, attempt, epoch)
        epoch = self.epoch()
        keys = [(job_id, attempt, ep or epoch, cluster) for job_id, _, _, attempt, ep in rows]
        tag = _page_tag(epoch, cluster, after, limit, keys)
        if if_none_match is not None and _names(if_none_match, tag):
            return tag, None
        tenants = {r[0]: r[1] for r in rows}
        entries = self.cache.get_many(keys)
        missing = [k for k, e in zip(keys, entries, strict=True) if e is None]
        if missing:
            specs = self.store.job_specs_json([k[0] for k in missing])
            made: dict[tuple[str, int, int, str], bytes] = {}
            for job_id, attempt, ep, _ in missing:
                text = specs.get(job_id)
                if text is None:  # the job was removed between the two reads: not listed
                    continue
                spec = _stored_spec_json(text)
                made[(job_id, attempt, ep, cluster)] = AssignmentCache.entry(
                    Assignment(
                        job_id=job_id,
                        attempt=attempt,
                        epoch=ep,
                        cluster=cluster,
                        tenant=tenants[job_id],
                        spec=spec,
                        lease_expires_at=lease_until,
                        inputs={d: f"yiwang://{cluster}/datasets/{d}" for d in spec.inputs},
                    )
                )
            self.cache.put_many(made)
            entries = [e if e is not None else made.get(k) for k, e in zip(keys, entries, strict=True)]
        tail = b',"lease_expires_at":' + _INSTANT.dump_json(lease_until) + b"}"
        return tag, b"[" + b",".join([e + tail for e in entries if e is not None]) + b"]"

    def release(self, cluster: str, job_id: str, attempt: int, epoch: int, reason: str) -> JobRead:
        """An agent gives back an attempt it stopped (lost its lease): the job goes back to
        Pending with its attempt raised, like a failover, instead of waiting for lease + grace.
        A stale attempt, epoch or cluster is refused, so only the current holder can do this."""
        self.cluster_state(cluster)
        row = self.store.get_job(job_id)
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        if (row["cluster"], row["attempt"], row["epoch"]) != (cluster, attempt, epoch) or row[
            "phase"
        ] not in ACTIVE_PHASES:
            raise StaleAttempt(
                f"attempt {attempt} (epoch {epoch}) of job {job_id} on {cluster} is not current"
            )
        message = f"released by the agent of {cluster}: {reason}"[:500]
        with self.lock, self.store.tx() as conn:
            ok = self.store.transition(
                conn,
                job_id,
                expect_phases=[row["phase"]],
                expect_attempt=attempt,
                values=requeue_values(attempt, message),
                event_type=Reason.Released,
                reason=message,
            )
            if not ok:
                raise StaleAttempt(f"job {job_id} changed meanwhile")
            self.registry.ledger.pop(job_id)
        self.counters.failovers += 1
        self.wake()
        return self.get_job(job_id)

    def report(self, cluster: str, rep: StatusReport) -> JobRead:
        """Apply one agent status report; a stale attempt, epoch or cluster is refused."""
        (outcome,) = self.apply_reports(cluster, [rep], renew=False)
        if outcome is not None:
            raise outcome
        return self.get_job(rep.job_id)

    def apply_reports(
        self, cluster: str, reports: list[StatusReport], *, renew: bool = True
    ) -> list[YiwangError | None]:
        """Apply many status reports of one agent in one transaction (a burst of finished jobs
        is one commit, not one each); the outcome of each, in order: None when taken, else the
        error (StaleAttempt: stop that attempt). ``renew``: the call is also the cluster's
        contact, like a heartbeat, so an agent busy reporting never looks silent.

        The jobs' rows are read once, locked (``get_jobs``); each report is checked against its
        row as the reports before it in the call left it (a Running and a Succeeded of one job
        in one call apply in turn), and the changes are written together (``transition_many``:
        one UPDATE and one INSERT of events for the whole call, not three statements a report).

        A report of an attempt that is no longer current (re-placed, cancelled) is refused and
        recorded as a fenced execution: an event on the job and ``yiwang_fenced_executions_total``."""
        state = self.cluster_state(cluster)
        outcomes: list[YiwangError | None] = [None] * len(reports)
        finished: list[tuple[str, str]] = []  # (job id, terminal phase)
        t_now = now()
        with self.lock, self.store.tx() as conn:
            if renew:
                # The cluster's row before its jobs' rows, the order a drain and a lease expiry
                # take them in (the other way round, a drain and a report batch of the cluster
                # could each hold what the other waits for: a deadlock under PostgreSQL)
                self.store.touch_cluster(conn, cluster, t_now)
            rows = self.store.get_jobs(conn, list(dict.fromkeys(r.job_id for r in reports)))
            changes: list[Change] = []
            outputs: list[tuple[str, str, int, str]] = []
            for i, rep in enumerate(reports):
                row = rows.get(rep.job_id)
                try:
                    change = self._change_of(cluster, rep, row)
                except StaleAttempt as exc:
                    outcomes[i] = exc
                    if row is not None and self._is_fenced(cluster, rep, row):
                        self._record_fenced(conn, cluster, rep, row)
                    continue
                except YiwangError as exc:
                    outcomes[i] = exc
                    continue
                if change is None:  # a repeat: nothing to write
                    continue
                assert row is not None
                changes.append(change)
                row["phase"] = change.phase  # the next report of this job in the call sees it
                if rep.output_tail.strip():
                    outputs.append((rep.job_id, cluster, rep.attempt, rep.output_tail))
                if JobPhase(change.phase).is_terminal():
                    finished.append((rep.job_id, change.phase))
            self.store.transition_many(conn, changes)
            if outputs:
                self.store.add_outputs(conn, outputs)
            for job_id, phase in finished:
                self.registry.ledger.pop(job_id)
                self.forget_terms(job_id, phase)
        wake = bool(finished)
        if renew:
            was = state.health
            self.contact(state, t_now)
            if was != Health.Ready:
                self.note_cluster(cluster, state, "its agent reported")
            wake = wake or was != Health.Ready
        if wake:
            self.wake()
        return outcomes

    @staticmethod
    def _change_of(cluster: str, rep: StatusReport, row: dict[str, Any] | None) -> Change | None:
        """The change one report makes to its job's row as read (None: a repeat, nothing to
        change); ``NotFound``, ``StaleAttempt`` or ``IllegalTransition`` when it is refused."""
        if row is None:
            raise NotFound(f"job {rep.job_id!r} not found")
        if row["cluster"] != cluster or row["attempt"] != rep.attempt or row["epoch"] != rep.epoch:
            raise StaleAttempt(
                f"attempt {rep.attempt} (epoch {rep.epoch}) of job {rep.job_id} on {cluster} "
                f"is not current (current: attempt {row['attempt']}, epoch {row['epoch']}, "
                f"cluster {row['cluster']}); stop it"
            )
        current, target = JobPhase(row["phase"]), JobPhase(rep.phase)
        if current.is_terminal():
            raise StaleAttempt(f"job {rep.job_id} is already {current.value}; stop it")
        if current == target:
            return None
        # the rule table, with the event the change records (``transition_many`` checks it again)
        phase_rule(rep.job_id, current.value, target.value, target.value)
        message = (
            rep.message or {"Running": "started", "Succeeded": "completed", "Failed": "failed"}[rep.phase]
        )
        tail = [line for line in rep.output_tail.splitlines() if line.strip()]
        if tail:
            message = f"{message}; output: {' | '.join(tail[-3:])[-500:]}"
        return Change(
            job_id=rep.job_id,
            from_phase=current.value,
            attempt=rep.attempt,
            phase=target.value,
            message=message,
            clear_lease=target in TERMINAL,
            cluster=row["cluster"],
            event_type=target.value,
            reason=message,
        )

    @staticmethod
    def _is_fenced(cluster: str, rep: StatusReport, row: dict[str, Any]) -> bool:
        """The report is of an earlier attempt of the job: an execution that went on after it
        was re-placed (not a cancelled job's last word, nor another cluster's wrong report)."""
        return rep.attempt < row["attempt"]

    def _record_fenced(self, conn: Any, cluster: str, rep: StatusReport, row: dict[str, Any]) -> None:
        self.fenced_reports += 1
        log.warning(
            "fenced execution: %s reported %s for attempt %d of job %s, which is now attempt %d",
            cluster,
            rep.phase,
            rep.attempt,
            rep.job_id,
            row["attempt"],
        )
        self.store.add_event(
            conn,
            job_id=rep.job_id,
            type="FencedReport",
            phase=row["phase"],
            cluster=cluster,
            attempt=rep.attempt,
            reason=(
                f"{cluster} reported {rep.phase} for attempt {rep.attempt} (epoch {rep.epoch}) after it "
                f"was re-placed; refused (the job is at attempt {row['attempt']})"
            )[:500],
        )
