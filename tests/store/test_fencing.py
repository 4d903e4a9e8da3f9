"""Fencing by the leader epoch, mid-cycle: the scheduling leader loses its lease after its cycle
decided and before the cycle's write; the write is refused in its own transaction (StaleLeader),
nothing it decided reaches the store, and the new leader places the job under its epoch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from controller.errors import StaleLeader
from controller.service import Controller
from controller.store import schema as t
from controller.store.store import now
from tests.test_run_once import CLUSTER, make_controller, tiny_job


def test_a_leader_deposed_mid_cycle_writes_nothing(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    old = make_controller(db_url, holder="beijing", leader_ttl_s=5.0)
    new = make_controller(db_url, holder="guian", leader_ttl_s=5.0, mode="standby")
    try:
        assert old.is_leader and old.epoch == 1 and new.epoch == 0
        old.heartbeat(CLUSTER, {"capacity": {"cpu": 64, "memory_gib": 256, "gpu": 0}})
        job = old.submit(tiny_job(0))[0]
        taken: list[int] = []
        real_tx = old.store.tx

        @contextmanager
        def tx_after_takeover(*args: Any, **kw: Any) -> Iterator[Any]:
            """The cycle's write transaction opens only after Gui'an has taken the lease: the
            decisions are made, Beijing's local clock still says it leads."""
            if not taken:
                with new.store.tx() as conn:
                    conn.execute(update(t.leader).values(expires_at=now() - timedelta(seconds=1)))
                assert new.renew_leadership()
                taken.append(new.epoch)
            with real_tx(*args, **kw) as conn:
                yield conn

        monkeypatch.setattr(old.store, "tx", tx_after_takeover)
        with pytest.raises(StaleLeader):
            old.schedule_pending()
        assert taken == [2]  # the takeover did land inside the old leader's cycle
        monkeypatch.undo()

        row = old.store.get_job(job.id)
        assert (row["phase"], row["cluster"], row["epoch"]) == ("Pending", None, 0)
        with old.store.read() as conn:
            assert conn.execute(select(func.count()).select_from(t.decisions)).scalar() == 0
            events = conn.execute(select(t.job_events.c.type).where(t.job_events.c.job_id == job.id)).all()
        assert [e[0] for e in events] == ["Submitted"]
        assert old.registry.ledger.jobs_on(CLUSTER) == {}  # no reservation left behind either

        new.sync_from_store()
        assert new.schedule_pending() == 1
        row = new.store.get_job(job.id)
        assert (row["phase"], row["epoch"]) == ("Scheduled", 2)
    finally:
        old.store.close()
        new.store.close()


def stored_health(ctl: Controller) -> str:
    return str({r["name"]: r for r in ctl.store.list_clusters()}[CLUSTER]["health"])


def test_a_deposed_leaders_late_unreachable_verdict_is_refused(db_url: str) -> None:
    """Marking a silent cluster Unreachable is a leader write too: once Gui'an has taken the
    lease, Beijing's late verdict (its view of the cluster is stale) is refused in its own
    transaction, and the cluster stays Ready in the store and in the new leader's view."""
    old = make_controller(db_url, holder="beijing", leader_ttl_s=5.0)
    new = make_controller(db_url, holder="guian", leader_ttl_s=5.0, mode="standby")
    try:
        old.heartbeat(CLUSTER, {"capacity": {"cpu": 64, "memory_gib": 256, "gpu": 0}})
        with old.store.tx() as conn:
            conn.execute(update(t.leader).values(expires_at=now() - timedelta(seconds=1)))
        assert new.renew_leadership() and new.epoch == 2
        new.sync_from_store()
        assert new.registry.clusters[CLUSTER].health == "Ready"
        # Beijing's local clock still says it leads, and its view says the cluster went silent.
        old.leadership.lead_until = time.monotonic() + 60
        grace = old.policies.failover.heartbeat_grace_s
        old.lead_since = now() - timedelta(hours=1)
        state = old.registry.clusters[CLUSTER]
        state.last_heartbeat = now() - timedelta(seconds=grace + 1)
        with pytest.raises(StaleLeader):
            old.expire_leases()
        assert stored_health(old) == "Ready"
        assert state.health == "Ready"  # nothing written, so nothing noted in memory either
        new.sync_from_store()
        assert new.registry.clusters[CLUSTER].health == "Ready"
        # The current leader's own verdict is written (the same path, its epoch current), the
        # cluster silent in the store too (a verdict is written only about the last committed
        # contact: test_a_heartbeat_landing_before_the_verdict_keeps_the_cluster_ready).
        new.lead_since = now() - timedelta(hours=1)
        silent_since = now() - timedelta(seconds=grace + 1)
        with new.store.tx() as conn:
            conn.execute(
                update(t.clusters).where(t.clusters.c.name == CLUSTER).values(last_heartbeat=silent_since)
            )
        new.registry.clusters[CLUSTER].last_heartbeat = silent_since
        assert new.expire_leases() == 0
        assert stored_health(new) == "Unreachable"
        assert new.registry.clusters[CLUSTER].health == "Unreachable"
    finally:
        old.store.close()
        new.store.close()


def test_a_heartbeat_landing_before_the_verdict_keeps_the_cluster_ready(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heartbeats commit and update the registry without the controller's lock: one that lands
    between the leader's judgement (no contact for longer than the grace) and its write of the
    verdict keeps the cluster Ready, in the store and in the registry; without a contact in
    between, the verdict stands."""
    ctl = make_controller(db_url, holder="beijing", leader_ttl_s=5.0)
    try:
        report = {"capacity": {"cpu": 64, "memory_gib": 256, "gpu": 0}}
        ctl.heartbeat(CLUSTER, report)
        grace = ctl.policies.failover.heartbeat_grace_s
        ctl.lead_since = now() - timedelta(hours=1)
        state = ctl.registry.clusters[CLUSTER]

        def go_silent() -> None:
            silent_since = now() - timedelta(seconds=grace + 1)
            with ctl.store.tx() as conn:
                conn.execute(
                    update(t.clusters).where(t.clusters.c.name == CLUSTER).values(last_heartbeat=silent_since)
                )
            state.last_heartbeat = silent_since

        go_silent()
        real = ctl.clusters._mark_unreachable

        def heartbeat_first(name: str, seen: Any) -> tuple[bool, Any]:
            ctl.heartbeat(CLUSTER, report)  # lands after the judgement, before the verdict
            return real(name, seen)

        monkeypatch.setattr(ctl.clusters, "_mark_unreachable", heartbeat_first)
        assert ctl.expire_leases() == 0
        assert stored_health(ctl) == "Ready" and state.health == "Ready"
        monkeypatch.undo()
        go_silent()
        assert ctl.expire_leases() == 0
        assert stored_health(ctl) == "Unreachable" and state.health == "Unreachable"
    finally:
        ctl.store.close()
