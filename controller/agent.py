"""The member-cluster agent (pull mode): heartbeats, takes assignments, runs them through an
executor, reports status.

Leases and fencing: each heartbeat renews the leases of the cluster's attempts for ``lease_s``.
The agent measures its own deadline from the moment it *sent* the last successful heartbeat, at a
safety margin below the lease, so it always gives up before the controller does: when it cannot
renew in time it stops every attempt itself, and the controller re-places them only after
lease + grace. A report the controller refuses as stale (409) stops that attempt at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from controller.assignments import Assignment
from controller.executors.base import ExecutionNotFound, ExecutionStatus, Executor

log = logging.getLogger("yiwang.agent")
REASON_LEASE_LOST = "LeaseLost"
REASON_REVOKED = "Revoked"


@dataclass
class AgentStats:
    heartbeats: int = 0
    heartbeat_failures: int = 0
    starts: int = 0
    reports: int = 0
    stale_reports: int = 0
    lease_losses: int = 0
    stops: dict[str, int] = field(default_factory=dict)


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
        data_dir: Path | None = None,
        fetch: Callable[[str, Path], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.executor = executor
        self.client = client
        self.base = f"{controller_url.rstrip('/')}/v1/agents/{cluster}"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.poll_interval_s = poll_interval_s
        self.lease_margin = lease_margin
        self.data_dir = data_dir
        self.fetch = fetch  # brings a data set this cluster lacks into data_dir (ds id, target path)
        self.clock = clock
        self.lease_s = 30.0
        self.deadline: float | None = None  # local monotonic time by which a renewal must succeed
        self.next_heartbeat = 0.0
        self.reported: dict[tuple[str, int], str] = {}
        self.assignments: dict[tuple[str, int], Assignment] = {}
        self.stats = AgentStats()
        self.backoff_s = 0.0

    # ---- protocol calls ---------------------------------------------------------------------
    async def heartbeat(self) -> bool:
        sent = self.clock()
        cap, used = self.executor.capacity(), self.executor.allocated()
        body = {
            "capacity": {"cpu": cap.cpu, "memory_gib": cap.memory_gib, "gpu": cap.gpu},
            "allocated": {"cpu": used.cpu, "memory_gib": used.memory_gib, "gpu": used.gpu},
            "active": len(self.executor.active()),
        }
        try:
            r = await self.client.post(f"{self.base}/heartbeat", json=body, headers=self.headers)
            r.raise_for_status()
        except httpx.HTTPError as exc:
            self.stats.heartbeat_failures += 1
            log.warning("%s: heartbeat failed: %s", self.cluster, exc)
            return False
        answer = r.json()
        self.lease_s = float(answer.get("lease_s", self.lease_s))
        self.deadline = sent + self.lease_s * self.lease_margin
        self.next_heartbeat = sent + self.lease_s / 3
        self.stats.heartbeats += 1
        return True

    async def fetch_assignments(self) -> list[Assignment] | None:
        try:
            r = await self.client.get(f"{self.base}/assignments", headers=self.headers)
            r.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("%s: cannot fetch assignments: %s", self.cluster, exc)
            return None
        return [Assignment.model_validate(a) for a in r.json()]

    async def report(self, a: Assignment, status: ExecutionStatus) -> bool:
        """Send a status report; True when the controller took it (or it is moot)."""
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
            self._stop((a.job_id, a.attempt), REASON_REVOKED)
            return True
        if r.status_code >= 400:
            log.warning(
                "%s: report for %s refused: %s %s", self.cluster, a.job_id, r.status_code, r.text[:200]
            )
            return False
        self.stats.reports += 1
        return True

    # ---- the loop ---------------------------------------------------------------------------
    def _stop(self, key: tuple[str, int], reason: str) -> None:
        self.executor.stop(key[0], key[1], reason)
        self.assignments.pop(key, None)
        self.reported.pop(key, None)
        self.stats.stops[reason] = self.stats.stops.get(reason, 0) + 1

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

    def lease_valid(self) -> bool:
        return self.deadline is not None and self.clock() < self.deadline

    async def step(self) -> None:
        """One round: renew the lease when due, reconcile assignments, report changes."""
        if self.clock() >= self.next_heartbeat and not await self.heartbeat():
            self.next_heartbeat = self.clock() + min(1.0, self.lease_s / 10)
        if not self.lease_valid():
            if self.executor.active() or self.assignments:
                self.stats.lease_losses += 1
                log.warning(
                    "%s: lease lost; stopping %d attempt(s)", self.cluster, len(self.executor.active())
                )
                for key in list(self.executor.active()):
                    self._stop(key, REASON_LEASE_LOST)
                self.assignments.clear()
            return
        wanted = await self.fetch_assignments()
        if wanted is not None:
            wanted_keys = {(a.job_id, a.attempt): a for a in wanted}
            for key in [k for k in self.reported if k not in wanted_keys and k not in self.assignments]:
                del self.reported[key]  # finished and no longer listed: forget it
            for key in list(self.executor.active()):
                if key not in wanted_keys:
                    self._stop(key, REASON_REVOKED)
            for key, a in wanted_keys.items():
                if key not in self.assignments and key not in self.reported:
                    self.assignments[key] = a
                    self.executor.start(self._resolve_inputs(a))
                    self.stats.starts += 1
        for key, a in list(self.assignments.items()):
            try:
                status = self.executor.poll(*key)
            except ExecutionNotFound:
                self.assignments.pop(key, None)
                continue
            if self.reported.get(key) == status.phase:
                continue
            if await self.report(a, status) and key in self.assignments:
                self.reported[key] = status.phase
                if status.terminal:
                    self.assignments.pop(key, None)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
                self.backoff_s = 0.0
                delay = self.poll_interval_s
            except Exception as exc:  # keep the agent alive; back off with jitter and say why
                self.backoff_s = min(30.0, max(0.5, self.backoff_s * 2))
                delay = self.backoff_s * (0.5 + random.random() / 2)
                log.warning("%s: agent step failed (%s); retrying in %.1fs", self.cluster, exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
