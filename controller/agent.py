"""The member-cluster agent (pull mode): heartbeats, takes assignments, runs them through an
executor, reports status.

Leases and fencing: the lease is the cluster's. Each heartbeat (and each batch of status reports)
renews it for ``lease_s`` from the controller's receipt; heartbeats run in a task of their own,
every ``heartbeat_interval_s`` the controller asks for, so no amount of work starves them. The
agent measures its own deadline from the moment it *sent* the last successful renewal, at a
safety margin below the lease, so it always gives up before the controller does: when it cannot
renew in time it stops every attempt itself (and the executor's fence does so even if the agent
is frozen), and the controller re-places them only after lease + grace. An attempt is started
only from an assignment list fetched under the lease still held (no lapse in between), and a
report the controller refuses as stale (409/404) stops that attempt at once. Status reports go
in batches, one call and one transaction for a burst of finished jobs.

Attempts stopped for lease loss are remembered and, once the controller answers again, released
(``POST .../release``): the controller sends the job back to Pending with its attempt raised
instead of waiting for lease + grace, and the stopped attempt is never reported as a failure of
the job. Attempts that finished while the controller was away are reported when it is back (the
controller takes the report only if the attempt is still current).

Controller restarts: a job keeps the epoch it was dispatched under, and the agent's reports carry
that epoch from the assignment, so attempts of a previous leader go on under a new one; only a
dispatch stamps a new epoch. A restart shorter than the agent's lease margin loses nothing: the
agent retries with back-off and renews as soon as the controller answers.

Executors are synchronous; calls of an executor that does network I/O (kubernetes) go through
``asyncio.to_thread`` so one slow API server never stalls the loop (or, in the embedded
federation, the other agents). ``ExecutorUnavailable`` never kills the loop: a start is retried
next round, a poll is skipped, a stop is retried until it goes through, and the heartbeat says
the executor is down (without capacity, so the controller does not trust stale numbers).

Why one module of this length: heartbeats, assignment intake, execution and report batching share
the agent's lease and fencing state; split apart, each part would reach into the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from controller.assignments import Assignment
from controller.executors.base import (
    RELEASE_REASONS,
    ExecutionNotFound,
    ExecutionStatus,
    Executor,
    ExecutorUnavailable,
    ResourceAmounts,
)

log = logging.getLogger("yiwang.agent")
REASON_LEASE_LOST = "LeaseLost"
REASON_REVOKED = "Revoked"
REASON_AGENT_STOPPED = "AgentStopped"
T = TypeVar("T")
Key = tuple[str, int]
REPORT_BATCH = 500  # status reports per call
ASSIGNMENT_PAGE = 500  # assignments per call
# Past this many heartbeat intervals without a renewal, the executor's fence pauses the attempts
# (none may finish unseen); the lease deadline itself (lease_margin x lease) stops them.
SUSPEND_AFTER_INTERVALS = 2.5
FENCE_SLACK_S = 0.5


@dataclass
class AgentStats:
    heartbeats: int = 0
    heartbeat_failures: int = 0
    starts: int = 0
    reports: int = 0
    report_batches: int = 0
    stale_reports: int = 0
    lease_losses: int = 0
    releases: int = 0
    executor_unavailable: int = 0
    unchanged_pages: int = 0  # listing pages answered 304: the page held was still current
    stops: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentEvent:
    """Something the agent did, with the wall-clock time (for tests, drills and logs)."""

    at: float
    kind: str  # heartbeat-failed, lease-lost, start, stop, report, stale, release
    job_id: str = ""
    attempt: int = 0
    detail: str = ""


@dataclass(frozen=True)
class MetricsSnapshot:
    capacity: ResourceAmounts | None
    active_keys: list[Key]
    active: list[Assignment]
    lease_valid: float
    executor_up: float


def _held(known: dict[tuple[Any, Any, Any], Assignment], entry: Any) -> Assignment | None:
    """The assignment the agent holds for a listing entry's (job, attempt, epoch), if any."""
    if not isinstance(entry, dict):
        return None
    return known.get((entry.get("job_id"), entry.get("attempt"), entry.get("epoch")))


class Agent:
    def __init__(
        self,
        cluster: str,
        executor: Executor,
        client: httpx.AsyncClient,
        *,
        controller_url: str = "",
        token: str | None = None,
        poll_interval_s: float = 0.5,
        lease_margin: float = 0.6,
        max_backoff_s: float = 10.0,
        max_parallel: int | None = None,
        data_dir: Path | None = None,
        fetch: Callable[[str, Path], bool] | None = None,
        offload: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.cluster = cluster
        self.executor = executor
        self.client = client
        self.base = f"{controller_url.rstrip('/')}/v1/agents/{cluster}"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.poll_interval_s = poll_interval_s
        self.lease_margin = lease_margin
        self.max_backoff_s = max_backoff_s
        self.data_dir = data_dir
        self.fetch = fetch  # brings a data set this cluster lacks into data_dir (ds id, target path)
        # Network-bound executors run in worker threads; local and simulated ones inline.
        self.offload = executor.name == "kubernetes" if offload is None else offload
        self.clock = clock
        self.wall = wall
        self.max_parallel = max_parallel  # attempts run at once; the rest wait at the controller
        self.lease_s = 15.0
        self.heartbeat_interval_s = 2.0
        self.deadline: float | None = None  # local monotonic time by which a renewal must succeed
        # Counts lease lapses: an assignment list is acted on only under the term it was fetched in.
        self.lease_term = 0
        self.next_heartbeat = 0.0
        self.heartbeat_backoff_s = 0.0
        self.leader_epoch = 0
        self.last_heartbeat_sent: float | None = None  # wall time of the last renewal's send
        self.executor_up = True
        self.reported: dict[Key, str] = {}
        self.assignments: dict[Key, Assignment] = {}
        # the listing's pages as last fetched, by cursor: (ETag, page) (``fetch_assignments``)
        self.pages: dict[str | None, tuple[str, list[Assignment]]] = {}
        self.pending_stops: dict[Key, str] = {}  # stops the executor could not carry out yet
        self.lost: dict[Key, Assignment] = {}  # stopped on lease loss; to release to the controller
        self.stats = AgentStats()
        self.events: deque[AgentEvent] = deque(maxlen=2000)
        self.backoff_s = 0.0
        self._renewer: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._heartbeat_lock: asyncio.Lock | None = None

    # ---- helpers ----------------------------------------------------------------------------
    def _event(self, kind: str, key: Key | None = None, detail: str = "") -> None:
        job_id, attempt = key if key else ("", 0)
        self.events.append(AgentEvent(self.wall(), kind, job_id, attempt, detail))

    async def _exec(self, fn: Callable[..., T], *args: Any) -> T:
        """Call the executor: in a worker thread when it does network I/O."""
        if self.offload:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    def lease_valid(self) -> bool:
        return self.deadline is not None and self.clock() < self.deadline

    def metrics_snapshot(self) -> MetricsSnapshot:
        """For /metrics (read from the metrics server's thread; executors are thread-safe)."""
        try:
            capacity: ResourceAmounts | None = self.executor.capacity()
            keys = self.executor.active()
            up = self.executor_up
        except ExecutorUnavailable:
            capacity, keys, up = None, [], False
        known = dict(self.assignments)
        return MetricsSnapshot(
            capacity=capacity,
            active_keys=keys,
            active=[known[k] for k in keys if k in known],
            lease_valid=1.0 if self.lease_valid() else 0.0,
            executor_up=1.0 if up else 0.0,
        )

    # ---- protocol calls ---------------------------------------------------------------------
    async def heartbeat(self) -> bool:
        if self._heartbeat_lock is None:
            self._heartbeat_lock = asyncio.Lock()
        async with self._heartbeat_lock:  # one renewal in flight at a time
            return await self._heartbeat()

    async def _heartbeat(self) -> bool:
        sent, sent_wall = self.clock(), self.wall()
        body: dict[str, Any] = {"executor": self.executor.name, "active": 0}
        try:
            cap = await self._exec(self.executor.capacity)
            used = await self._exec(self.executor.allocated)
            body["active"] = len(await self._exec(self.executor.active))
            body["capacity"] = {"cpu": cap.cpu, "memory_gib": cap.memory_gib, "gpu": cap.gpu}
            body["allocated"] = {"cpu": used.cpu, "memory_gib": used.memory_gib, "gpu": used.gpu}
            self.executor_up = True
        except ExecutorUnavailable as exc:  # say so; leave capacity out rather than guess
            self.stats.executor_unavailable += 1
            self.executor_up = False
            body["executor_error"] = str(exc)[:500]
        try:
            r = await self.client.post(
                f"{self.base}/heartbeat", json=body, headers=self.headers, timeout=self._call_timeout()
            )
            r.raise_for_status()
            answer = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            self._heartbeat_failed(exc)
            return False
        self._renewed(sent, answer)
        self.last_heartbeat_sent = sent_wall
        self.heartbeat_backoff_s = 0.0
        self.stats.heartbeats += 1
        return True

    def _call_timeout(self) -> float:
        """A renewal that hangs (packets dropped) must not outlive the lease it would renew."""
        return max(1.0, min(10.0, self.lease_s * self.lease_margin / 2))

    def _renewed(self, sent: float, answer: dict[str, Any]) -> None:
        """A call sent at ``sent`` (monotonic) renewed the cluster's lease: move the deadline
        on, and the executor's fence with it."""
        self.lease_s = float(answer.get("lease_s", self.lease_s))
        self.heartbeat_interval_s = float(answer.get("heartbeat_interval_s", self.lease_s / 5))
        epoch = int(answer.get("epoch") or 0)
        if 0 < epoch < self.leader_epoch:
            log.warning("%s: controller answered with epoch %d < %d", self.cluster, epoch, self.leader_epoch)
        self.leader_epoch = max(self.leader_epoch, epoch)
        if self.deadline is None or sent >= self.deadline:
            self.lease_term += 1  # the lease had lapsed: earlier assignment lists are void
        deadline = sent + self.lease_s * self.lease_margin
        if self.deadline is None or deadline > self.deadline:
            self.deadline = deadline
            fence = getattr(self.executor, "fence", None)
            if callable(fence):
                # The fence is the backstop: it acts just after the agent would have itself.
                suspend_at = min(deadline, sent + SUSPEND_AFTER_INTERVALS * self.heartbeat_interval_s)
                fence(suspend_at, deadline + FENCE_SLACK_S)
        self.next_heartbeat = max(self.next_heartbeat, sent + self.heartbeat_interval_s)

    def _why(self, exc: Exception) -> str:
        """The error, naming the controller URL the agent could not reach."""
        text = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.TransportError):
            return f"{text} (controller {self.base.split('/v1/agents/')[0]})"
        return text

    def _heartbeat_failed(self, exc: Exception) -> None:
        """Retry with exponential back-off and jitter, but often enough to renew before the
        deadline while the lease still holds, and never slower than two renewal intervals: once
        the controller is back, the agent must be in touch again well within lease + grace, or
        attempts it finished meanwhile (and holds the reports of) would be re-placed."""
        self.stats.heartbeat_failures += 1
        t = self.clock()
        cap = min(self.max_backoff_s, 2 * self.heartbeat_interval_s)
        self.heartbeat_backoff_s = min(cap, max(0.2, self.heartbeat_backoff_s * 2))
        delay = self.heartbeat_backoff_s * (0.5 + random.random() / 2)
        if self.deadline is not None and t < self.deadline:
            delay = min(delay, max(0.05, (self.deadline - t) / 3))
        self.next_heartbeat = t + delay
        detail = self._why(exc)
        self._event("heartbeat-failed", None, detail)
        log.warning("%s: heartbeat failed (%s); retrying in %.1fs", self.cluster, detail, delay)

    async def fetch_assignments(self) -> list[Assignment] | None:
        """Every current assignment, page by page; None when the controller cannot be asked.

        Each page is kept with its ``ETag`` and asked for again with it in ``If-None-Match``:
        a 304 means the page lists the same attempts, and the agent keeps the page it holds
        (nothing sent, parsed or validated for an idle cluster). Pages past the last one seen
        this round are forgotten."""
        out: list[Assignment] = []
        after: str | None = None
        seen: dict[str | None, tuple[str, list[Assignment]]] = {}
        # A page that changed mostly lists attempts the agent already holds (one job ended, and
        # every later page's cursor moved): those entries are taken as held, not validated
        # again (an entry says nothing that changes for its job, attempt and epoch but the
        # lease, which the agent keeps from its renewals, not from this list). Indexed at the
        # first page that changed: an idle poll (all 304s) needs no index.
        known: dict[tuple[Any, Any, Any], Assignment] | None = None
        try:
            while True:
                params: dict[str, str | int] = {"limit": ASSIGNMENT_PAGE}
                if after is not None:
                    params["after"] = after
                held = self.pages.get(after)
                headers = self.headers if held is None else {**self.headers, "If-None-Match": held[0]}
                r = await self.client.get(
                    f"{self.base}/assignments",
                    params=params,
                    headers=headers,
                    timeout=self._call_timeout(),
                )
                if r.status_code == 304 and held is not None:
                    page = held[1]
                    self.stats.unchanged_pages += 1
                else:
                    r.raise_for_status()
                    if known is None:
                        known = {(a.job_id, a.attempt, a.epoch): a for _, p in self.pages.values() for a in p}
                    page = [_held(known, a) or Assignment.model_validate(a) for a in r.json()]
                    tag = r.headers.get("etag")
                    held = (tag, page) if tag else None
                if held is not None:
                    seen[after] = held
                out += page
                if len(page) < ASSIGNMENT_PAGE:
                    self.pages = seen
                    return out
                after = page[-1].job_id
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("%s: cannot fetch assignments: %s", self.cluster, self._why(exc))
            return None

    async def report_batch(self, items: list[tuple[Assignment, ExecutionStatus]]) -> dict[Key, bool]:
        """Send many status reports in one call (which also renews the lease). For each
        attempt: True when the controller took it, False when it refused it as stale (the
        attempt is then stopped); left out when the call failed (sent again next round)."""
        done: dict[Key, bool] = {}
        for k in range(0, len(items), REPORT_BATCH):
            chunk = items[k : k + REPORT_BATCH]
            body = {"reports": [st.report(a).model_dump(mode="json") for a, st in chunk]}
            sent = self.clock()
            try:
                r = await self.client.post(
                    f"{self.base}/reports", json=body, headers=self.headers, timeout=self._call_timeout()
                )
                r.raise_for_status()
                answer = r.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("%s: %d report(s) failed: %s", self.cluster, len(chunk), self._why(exc))
                return done
            self.stats.report_batches += 1
            self._renewed(sent, answer)
            for (a, st), outcome in zip(chunk, answer["outcomes"], strict=True):
                key = (a.job_id, a.attempt)
                if outcome["status"] in (404, 409):
                    self.stats.stale_reports += 1
                    self._event("stale", key, f"{outcome['status']} for {st.phase}")
                    await self._stop(key, REASON_REVOKED)
                    done[key] = False
                elif outcome["status"] < 300:
                    self.stats.reports += 1
                    self._event("report", key, st.phase)
                    done[key] = True
                else:
                    log.warning("%s: report for %s refused: %s", self.cluster, a.job_id, outcome)
        return done

    async def report(self, a: Assignment, status: ExecutionStatus) -> bool:
        """Send a status report; True when the controller took it (or it is moot)."""
        key = (a.job_id, a.attempt)
        try:
            r = await self.client.post(
                f"{self.base}/status", json=status.report(a).model_dump(mode="json"), headers=self.headers
            )
        except httpx.HTTPError as exc:
            log.warning("%s: report for %s failed: %s", self.cluster, a.job_id, exc)
            return False
        if r.status_code in (404, 409):
            # Stale attempt or epoch, cancelled, or re-placed: this attempt must not go on.
            self.stats.stale_reports += 1
            self._event("stale", key, f"{r.status_code} for {status.phase}")
            await self._stop(key, REASON_REVOKED)
            return True
        if r.status_code >= 400:
            log.warning(
                "%s: report for %s refused: %s %s", self.cluster, a.job_id, r.status_code, r.text[:200]
            )
            return False
        self.stats.reports += 1
        self._event("report", key, status.phase)
        return True

    async def release(self, a: Assignment, reason: str) -> bool:
        """Give back an attempt stopped on lease loss; True once the controller has decided."""
        body = {"job_id": a.job_id, "attempt": a.attempt, "epoch": a.epoch, "reason": reason}
        try:
            r = await self.client.post(f"{self.base}/release", json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            log.warning("%s: release of %s failed: %s", self.cluster, a.job_id, exc)
            return False
        if r.status_code in (200, 404, 409):  # re-queued, or already re-placed / gone
            self.stats.releases += 1
            self._event("release", (a.job_id, a.attempt), str(r.status_code))
            return True
        log.warning("%s: release of %s refused: %s", self.cluster, a.job_id, r.status_code)
        return False

    # ---- executor calls that must not kill the loop ----------------------------------------
    async def _stop(self, key: Key, reason: str) -> None:
        self.assignments.pop(key, None)
        self.reported.pop(key, None)
        self.stats.stops[reason] = self.stats.stops.get(reason, 0) + 1
        self._event("stop", key, reason)
        try:
            await self._exec(self.executor.stop, key[0], key[1], reason)
            self.pending_stops.pop(key, None)
        except ExecutorUnavailable as exc:
            self.stats.executor_unavailable += 1
            self.pending_stops[key] = reason
            log.warning("%s: cannot stop %s yet (%s); will retry", self.cluster, key, exc)

    async def _retry_stops(self) -> None:
        for key, reason in list(self.pending_stops.items()):
            try:
                await self._exec(self.executor.stop, key[0], key[1], reason)
                del self.pending_stops[key]
            except ExecutorUnavailable:
                self.stats.executor_unavailable += 1
                return  # still down: try again next round

    async def _start(self, key: Key, a: Assignment) -> None:
        try:
            await self._exec(self.executor.start, self._resolve_inputs(a))
        except ExecutorUnavailable as exc:  # not started: it stays wanted and is retried
            self.stats.executor_unavailable += 1
            log.warning("%s: cannot start %s yet: %s", self.cluster, key, exc)
            return
        self.assignments[key] = a
        self.stats.starts += 1
        self._event("start", key)

    def _resolve_inputs(self, a: Assignment) -> Assignment:
        if self.data_dir is None:
            return a
        local = {}
        for ds, uri in a.inputs.items():
            path = self.data_dir / f"{ds}.csv"
            if not path.exists() and self.fetch is not None:
                self.fetch(ds, path)
            local[ds] = str(path) if path.exists() else uri
        return a.model_copy(update={"inputs": local})

    async def _active(self) -> list[Key] | None:
        try:
            return list(await self._exec(self.executor.active))
        except ExecutorUnavailable:
            self.stats.executor_unavailable += 1
            return None

    # ---- the loop ---------------------------------------------------------------------------
    async def lose_lease(self) -> None:
        """Stop every running attempt; remember them for release. Finished, unreported ones
        stay to be reported when the controller answers again."""
        active = await self._active()
        if active is None:  # the executor cannot say: stop everything not known to be finished
            running = sorted(k for k in self.assignments if k not in self.pending_stops)
        else:
            running = sorted(active)
        if not running:
            return
        self.stats.lease_losses += 1
        self._event("lease-lost", None, f"{len(running)} attempt(s)")
        log.warning("%s: lease lost; stopping %d attempt(s)", self.cluster, len(running))
        for key in running:
            a = self.assignments.get(key)
            if a is not None:
                self.lost[key] = a
            await self._stop(key, REASON_LEASE_LOST)

    async def step(self) -> None:
        """One round: renew the lease when due (unless the renewal task does), reconcile
        assignments, report changes."""
        if self._renewer is None and self.clock() >= self.next_heartbeat:
            await self.heartbeat()
        await self._retry_stops()
        if not self.lease_valid():
            await self.lose_lease()
            return
        for key, a in list(self.lost.items()):
            if await self.release(a, f"{REASON_LEASE_LOST}: the agent could not renew its lease"):
                del self.lost[key]
        term = self.lease_term
        wanted = await self.fetch_assignments()
        if wanted is not None:
            wanted_keys = {(a.job_id, a.attempt): a for a in wanted}
            for key in [k for k in self.reported if k not in wanted_keys and k not in self.assignments]:
                del self.reported[key]  # finished and no longer listed: forget it
            active = await self._active()
            for key in active or []:
                if key not in wanted_keys:
                    await self._stop(key, REASON_REVOKED)
            running = len(active) if active is not None else len(self.assignments)
            for key, a in wanted_keys.items():
                if key in self.assignments or key in self.reported or key in self.lost:
                    continue
                if self.max_parallel is not None and running >= self.max_parallel:
                    break  # the rest wait, Scheduled, at the controller
                # Only under the lease this list was fetched in: after a lapse (a freeze, a
                # cut), the controller may have re-placed any of these meanwhile.
                if not self.lease_valid() or self.lease_term != term:
                    break
                await self._start(key, a)
                running += 1
        await self._report_changes()

    async def _report_changes(self) -> None:
        """Poll every attempt; send what changed in batches. An attempt stopped by the fence or
        interrupted with a previous agent did not end by itself: it is released, not reported."""
        changed: list[tuple[Assignment, ExecutionStatus]] = []
        for key, a in list(self.assignments.items()):
            try:
                status = await self._exec(self.executor.poll, *key)
            except ExecutionNotFound:
                self.assignments.pop(key, None)
                continue
            except ExecutorUnavailable:
                self.stats.executor_unavailable += 1
                continue  # unknown for now; the next round asks again
            if status.terminal and status.reason in RELEASE_REASONS:
                self.assignments.pop(key, None)
                self.lost[key] = a
                self._event("stop", key, status.reason)
                continue
            if self.reported.get(key) != status.phase:
                changed.append((a, status))
        if not changed:
            return
        taken = await self.report_batch(changed)
        for a, status in changed:
            key = (a.job_id, a.attempt)
            if taken.get(key) and key in self.assignments:
                self.reported[key] = status.phase
                if status.terminal:
                    self.assignments.pop(key, None)

    async def recover(self) -> list[Key]:
        """After a restart, adopt the attempts the executor's backend still runs (kubernetes);
        they are kept if the controller still lists them and stopped otherwise."""
        recover = getattr(self.executor, "recover", None)
        if not callable(recover):
            return []
        try:
            adopted: list[Key] = await self._exec(recover, self.cluster)
        except ExecutorUnavailable as exc:
            self.stats.executor_unavailable += 1
            log.warning("%s: cannot recover attempts yet: %s", self.cluster, exc)
            return []
        if adopted:
            log.info("%s: adopted %d running attempt(s)", self.cluster, len(adopted))
        return adopted

    async def _renew_loop(self, stop: asyncio.Event) -> None:
        """Heartbeats on their own schedule: never behind the work of a step."""
        while not stop.is_set():
            if self.clock() >= self.next_heartbeat:
                await self.heartbeat()
            delay = max(0.01, self.next_heartbeat - self.clock())
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass

    def _wake_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """From the executor's thread: an attempt ended; report it now, not at the next poll."""
        wake = self._wake
        if wake is not None:
            loop.call_soon_threadsafe(wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        await self.recover()
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        listen = getattr(self.executor, "set_exit_listener", None)
        if callable(listen):
            listen(lambda: self._wake_soon(loop))
        self._renewer = asyncio.create_task(self._renew_loop(stop), name=f"renew-{self.cluster}")
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                try:
                    await self.step()
                    self.backoff_s = 0.0
                    delay = self.poll_interval_s
                except Exception as exc:  # keep the agent alive; back off with jitter and say why
                    self.backoff_s = min(self.max_backoff_s, max(0.5, self.backoff_s * 2))
                    delay = self.backoff_s * (0.5 + random.random() / 2)
                    log.exception("%s: agent step failed (%s); retrying in %.1fs", self.cluster, exc, delay)
                left = self.deadline - self.clock() if self.deadline is not None else 0.0
                if left > 0 and self.executor_has_work():
                    delay = min(delay, left + 0.01)  # never sleep past the lease deadline with work
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({stopped, woken}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                self._wake.clear()
        finally:
            stopped.cancel()
            renewer, self._renewer = self._renewer, None
            renewer.cancel()
            try:
                await renewer
            except asyncio.CancelledError:
                pass
            if callable(listen):
                listen(None)

    def executor_has_work(self) -> bool:
        return bool(self.assignments or self.pending_stops)

    async def shutdown(self, reason: str = REASON_AGENT_STOPPED, *, release: bool = False) -> None:
        """Stop every attempt (the agent is going away and will not renew its lease); with
        ``release`` also hand them back so the controller re-places them at once."""
        for key in await self._active() or []:
            a = self.assignments.get(key)
            await self._stop(key, reason)
            if release and a is not None:
                await self.release(a, f"{reason}: the agent is shutting down")
