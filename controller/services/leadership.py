"""Leadership and the controller's background loops.

``Leadership``: the scheduling lease this process holds in the store (its epoch, the local
deadline before which it may act as leader, when it took the epoch), renewed through
``Store.acquire_leadership``. Every write on the leader's behalf carries ``epoch`` and is fenced
by ``Store.check_leader`` in its own transaction.

``ControlLoops``: the threads that drive the process: the control loop (sync the views, then,
while leading, checkpoint the audit chain, expire silent clusters' leases and run scheduling
cycles), the lease loop (renewal in its own thread, so no cycle starves it), the metrics sampler,
and for ``role=api`` the follow loop (serve, never lead). The work itself is passed in as
callables, late-bound by the composition root (``controller/service.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from controller.errors import StaleLeader, StoreUnavailable
from controller.scheduler.collector import tune_gc
from controller.scheduler.kernels import warm_up
from controller.settings import Settings
from controller.store.store import Store, now

log = logging.getLogger("yiwang.controller")


class Leadership:
    def __init__(self, store: Store, lock: threading.RLock, settings: Settings) -> None:
        self.store = store
        self.lock = lock
        self.settings = settings
        self.epoch = 0  # the leader epoch this process holds; 0 when it does not lead
        # Local monotonic time until which this process may act as leader: the send time of the
        # last successful renewal plus the TTL, less a margin for clock-rate differences, so it
        # stops leading before a successor can take the lease (the store's expiry).
        self.lead_until = 0.0
        # When this process took its current epoch: a cluster's silence counts only from then
        # (expire_leases), since before it no contact could reach a leader (a store failover, a
        # controller outage) and agents that finished work meanwhile must get to report it.
        self.lead_since: datetime | None = None
        self.observed_epoch = 0  # the leader epoch in the store, as of the last sync

    @property
    def current_epoch(self) -> int:
        """The epoch agents are told: this process's own while it leads, else the store's."""
        return self.epoch or self.observed_epoch

    @property
    def leader_margin_s(self) -> float:
        """How long before the store's lease expiry this process stops leading."""
        return min(2.0, self.settings.leader_ttl_s * 0.2)

    def renew(self) -> bool:
        sent = time.monotonic()
        epoch = self.store.acquire_leadership(self.settings.holder, self.settings.leader_ttl_s)
        with self.lock:
            if epoch is None:
                if self.epoch:
                    log.warning("lost the scheduling lease (epoch %d): no longer leading", self.epoch)
                self.epoch, self.lead_until = 0, 0.0
            else:
                if epoch != self.epoch:
                    log.info("leading with epoch %d", epoch)
                    self.lead_since = now()
                self.epoch = epoch
                self.lead_until = sent + self.settings.leader_ttl_s - self.leader_margin_s
        return epoch is not None

    @property
    def is_leader(self) -> bool:
        """Holds the scheduling lease now. Without background loops (tests, tools) the lease
        is renewed by ``leading()`` on use instead."""
        return self.epoch > 0 and (time.monotonic() < self.lead_until or not self.settings.background)

    def leading(self) -> bool:
        """Checked before every cycle and every dispatch: still the leader, with time to spare?
        Without a lease thread (background=False) the lease is renewed here when it is due."""
        if self.epoch > 0 and time.monotonic() < self.lead_until:
            return True
        if not self.settings.background and self.epoch > 0:
            return self.renew()
        return False

    def lost_lead(self, exc: StaleLeader) -> None:
        log.warning("a write as leader epoch %d was refused (%s): no longer leading", self.epoch, exc.detail)
        with self.lock:
            self.epoch, self.lead_until = 0, 0.0


class ControlLoops:
    def __init__(
        self,
        settings: Settings,
        leadership: Leadership,
        *,
        refresh_capacity: Callable[[], Any],
        sync: Callable[[], None],
        checkpoint_audit: Callable[[], None],
        prune: Callable[[], Any],
        expire_leases: Callable[[], int],
        schedule_pending: Callable[[], int],
        sample_metrics: Callable[[], Any],
    ) -> None:
        self.settings = settings
        self.leadership = leadership
        self.refresh_capacity = refresh_capacity
        self.sync = sync
        self.checkpoint_audit = checkpoint_audit
        self.prune = prune
        self.expire_leases = expire_leases
        self.schedule_pending = schedule_pending
        self.sample_metrics = sample_metrics
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease_thread: threading.Thread | None = None
        self._sampler_thread: threading.Thread | None = None
        self._store_down_logged: dict[str, float] = {}

    def start(self) -> None:
        if self.settings.tune_gc:
            tune_gc()
        warm_up()  # the scheduler's compiled kernels, before any loop or heartbeat waits on them
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="yiwang-control-loop", daemon=True)
            self._thread.start()
        if self._sampler_thread is None:
            self._sampler_thread = threading.Thread(
                target=self._sample_loop, name="yiwang-metrics-sampler", daemon=True
            )
            self._sampler_thread.start()
        if self._lease_thread is None and self.settings.role == "all":
            self._lease_thread = threading.Thread(
                target=self._lease_loop, name="yiwang-leader-lease", daemon=True
            )
            self._lease_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._lease_thread is not None:
            self._lease_thread.join(timeout=10)
            self._lease_thread = None
        if self._sampler_thread is not None:
            self._sampler_thread.join(timeout=10)
            self._sampler_thread = None

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        if self.settings.role == "api":
            self._follow_loop()
            return
        last_cycle = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.settings.loop_interval_s)
            # Coalesce wake-ups: under a stream of submissions a cycle runs at most every
            # min_cycle_gap_s and takes everything queued meanwhile, instead of one cycle (and
            # one fsync under SQLite's single write lock) per submission.
            gap = self.settings.min_cycle_gap_s - (time.monotonic() - last_cycle)
            if gap > 0 and self._stop.wait(gap):
                break
            self._wake.clear()
            last_cycle = time.monotonic()
            try:
                self.refresh_capacity()  # Prometheus, in its own thread, at a bounded rate
                self.sync()
                if self.leadership.leading():
                    self.checkpoint_audit()
                    self.expire_leases()
                    while self.schedule_pending() >= self.settings.schedule_batch:
                        pass
                    self.prune()  # retention: at most one bounded pass, when one is due
            except StaleLeader as exc:  # deposed mid-cycle: the cycle's writes were rolled back
                self.leadership.lost_lead(exc)
            except StoreUnavailable as exc:  # a failover: nothing of the cycle was committed
                self.store_down(exc, "control loop")
                self._stop.wait(min(1.0, exc.retry_after))
            except Exception:  # the loop must survive a failed cycle; the error is logged in full
                log.exception("control loop cycle failed")

    def _lease_loop(self) -> None:
        """Renew the scheduling lease in its own thread, so that no cycle, however long, starves
        it: a leader renews five times per TTL; a follower tries to take the lease every second
        (or faster with a short TTL), so a successor leads within TTL + about a second."""
        ttl = self.settings.leader_ttl_s
        while True:
            try:
                was = self.leadership.epoch
                if self.leadership.renew() and not was:
                    self.wake()
            except StoreUnavailable as exc:  # our lease runs out by itself (leading() says so)
                self.store_down(exc, "leader lease")
            except Exception:
                log.exception("renewing the scheduling lease failed")
            if self._stop.wait(ttl / 5 if self.leadership.epoch else min(1.0, ttl / 5)):
                return

    def store_down(self, exc: StoreUnavailable, what: str) -> None:
        """One warning per 5 s while the store is away (a failover lasts tens of seconds and the
        loops retry many times a second)."""
        t = time.monotonic()
        if t - self._store_down_logged.get(what, float("-inf")) >= 5.0:
            self._store_down_logged[what] = t
            log.warning("%s: %s", what, exc.detail)

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.settings.metrics_sample_s):
            try:
                self.sample_metrics()
            except StoreUnavailable as exc:  # a failover: a gap in the charts, nothing more
                self.store_down(exc, "metrics sampling")
            except Exception:
                log.exception("sampling the controller's metrics failed")

    def _follow_loop(self) -> None:
        """role=api: serve, never lead; follow the store so every view matches the leader's."""
        while not self._stop.wait(self.settings.follow_interval_s):
            try:
                self.refresh_capacity()
                self.sync()
            except StoreUnavailable as exc:  # a failover: the views catch up once it is over
                self.store_down(exc, "follower")
            except Exception:
                log.exception("sync from the store failed")
