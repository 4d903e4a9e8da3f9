"""Several controller processes on one database (controller/follower.py): an API replica
(role=api) and the scheduling leader (role=all) agree on clusters, policies, data sets, the
allocation ledger and the epoch, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import ast
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert

from controller.assignments import StatusReport
from controller.datasets import DatasetCreate
from controller.jobs import JobCreate
from controller.registry import Health
from controller.service import Controller
from controller.settings import Settings
from controller.store import Store
from controller.store import schema as t
from controller.store.store import now


@pytest.fixture
def pair(db_url: str) -> Iterator[tuple[Controller, Controller]]:
    """(leader, api replica): two controllers on one database, as two processes would be."""
    leader = Controller(Settings(database_url=db_url, background=False, holder="leader"))
    api = Controller(Settings(database_url=db_url, background=False, role="api", holder="api"))
    yield leader, api
    api.store.close()
    leader.store.close()


def job(name: str, tenant: str = "guangdong", cpu: float = 2.0, **kw: object) -> JobCreate:
    return JobCreate.model_validate({"name": name, "tenant": tenant, "resources": {"cpu": cpu}, **kw})


def ready_everywhere(leader: Controller, api: Controller) -> None:
    for name in api.registry.clusters:
        api.heartbeat(name, None)
    leader.sync_from_store()


def ledger_truth(ctl: Controller) -> dict[str, tuple[str, int]]:
    """What a controller started now would hold: the stored active attempts."""
    return {r["id"]: (r["cluster"], r["attempt"]) for r in ctl.store.active_jobs()}


def ledger_of(ctl: Controller) -> dict[str, tuple[str, int]]:
    return {j: (e.cluster, e.attempt) for j, e in ctl.registry.ledger.entries.items()}


def test_an_api_replica_never_leads_and_tells_agents_the_leaders_epoch(
    pair: tuple[Controller, Controller],
) -> None:
    leader, api = pair
    assert leader.is_leader and leader.epoch >= 1
    assert not api.is_leader
    assert api.schedule_pending() == 0
    api.sync_from_store()
    assert api.heartbeat("prov-guangdong", None)["epoch"] == leader.epoch


def test_jobs_submitted_to_the_replica_are_placed_by_the_leader_and_the_replica_sees_them(
    pair: tuple[Controller, Controller],
) -> None:
    leader, api = pair
    ready_everywhere(leader, api)
    assert all(s.health == Health.Ready for s in leader.registry.clusters.values())
    created = [api.submit(job(f"j{i}"))[0] for i in range(5)]
    assert api.schedule_pending() == 0  # the replica does not schedule
    assert leader.schedule_pending() == 5
    api.sync_from_store()
    assert ledger_of(api) == ledger_of(leader) == ledger_truth(leader)
    placed_on = {leader.registry.ledger.entries[j.id].cluster for j in created}
    total = sum(float(api.cluster_view(api.registry.clusters[c])["allocated"]["cpu"]) for c in placed_on)
    assert total == pytest.approx(10.0)


def test_a_cancel_or_a_finish_on_the_replica_frees_the_leaders_capacity(
    pair: tuple[Controller, Controller],
) -> None:
    leader, api = pair
    ready_everywhere(leader, api)
    a, _ = api.submit(job("a", cpu=4))
    b, _ = api.submit(job("b", cpu=4))
    assert leader.schedule_pending() == 2
    api.sync_from_store()
    cluster_b = api.get_job(b.id).cluster
    assert cluster_b is not None
    api.cancel(a.id)
    row = api.store.get_job(b.id)
    assert row is not None
    rep = StatusReport(job_id=b.id, attempt=row["attempt"], epoch=row["epoch"], phase="Running")
    api.report(cluster_b, rep)
    api.report(cluster_b, rep.model_copy(update={"phase": "Succeeded"}))
    assert a.id in leader.registry.ledger and b.id in leader.registry.ledger  # not yet synced
    leader.sync_from_store()
    assert a.id not in leader.registry.ledger and b.id not in leader.registry.ledger
    assert not leader.registry.ledger.tenant_totals()
    assert ledger_of(leader) == ledger_truth(leader) == {}


def test_cordon_policy_and_data_set_changes_on_the_replica_reach_the_leader(
    pair: tuple[Controller, Controller],
) -> None:
    leader, api = pair
    ready_everywhere(leader, api)
    # cordon: the leader stops placing there
    api.set_cordon("prov-guangdong", True)
    leader.sync_from_store()
    assert leader.registry.clusters["prov-guangdong"].cordoned
    j, _ = api.submit(job("c"))
    leader.schedule_pending()
    assert leader.get_job(j.id).cluster not in (None, "prov-guangdong")
    # a data set registered through the replica is in the leader's catalogue
    ds = DatasetCreate.model_validate(
        {
            "id": "gd-census-2026",
            "owner": "guangdong",
            "classification": "general",
            "size_bytes": 10**9,
            "locations": ["prov-guangdong"],
        }
    )
    api.add_dataset(ds)
    leader.sync_from_store()
    assert "gd-census-2026" in leader.datasets
    # a placement policy put through the replica is the leader's policy
    body = leader.policies.placement.model_dump(mode="json")
    body["scores"] = [s for s in body["scores"] if s["name"] != "green"]
    api.put_policy("placement", body)
    assert leader.policies.placement.model_dump(mode="json") != body
    leader.sync_from_store()
    assert leader.policies.placement.model_dump(mode="json") == body
    assert "green" not in [p.NAME for p, _ in leader.scheduler.scores]  # type: ignore[attr-defined]


def test_a_new_cluster_registered_on_the_replica_is_schedulable_on_the_leader(
    pair: tuple[Controller, Controller],
) -> None:
    leader, api = pair
    spec = leader.registry.clusters["dept-mps"].spec.model_copy(
        update={"name": "dept-new", "tenant": "dept-new"}
    )
    api.register_cluster(spec)
    api.heartbeat("dept-new", None)
    leader.sync_from_store()
    assert leader.registry.clusters["dept-new"].health == Health.Ready
    assert leader.registry.network is not None and "dept-new" in leader.registry.network.names
    j, _ = api.submit(job("n", tenant="dept-new"))
    leader.schedule_pending()
    assert leader.get_job(j.id).phase.value == "Scheduled"


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_interleaved_work_on_both_leaves_both_ledgers_equal_to_the_store(
    pair: tuple[Controller, Controller], seed: int
) -> None:
    """A seeded random interleaving of submissions, cycles, cancels, finishes, drains and
    syncs: after a final sync both ledgers equal the stored truth (the invariant a cycle
    relies on not to overcommit), and no cluster is overcommitted."""
    leader, api = pair
    ready_everywhere(leader, api)
    rng = random.Random(seed)
    tenants = ["guangdong", "beijing", "sichuan", "national"]
    for step in range(120):
        op = rng.random()
        who = leader if rng.random() < 0.5 else api
        if op < 0.35:
            who.submit(job(f"s{step}", tenant=rng.choice(tenants), cpu=rng.choice([1, 8, 64])))
        elif op < 0.55:
            leader.sync_from_store()
            leader.schedule_pending()
        elif op < 0.75:
            active = list(ledger_truth(leader))
            if active:
                jid = rng.choice(active)
                row = who.store.get_job(jid)
                assert row is not None
                rep = StatusReport(job_id=jid, attempt=row["attempt"], epoch=row["epoch"], phase="Running")
                if row["phase"] == "Scheduled":
                    who.report(row["cluster"], rep)
                who.report(row["cluster"], rep.model_copy(update={"phase": "Succeeded"}))
        elif op < 0.85:
            pending = [r["id"] for r in who.store.list_jobs(phase="Pending", limit=50)]
            if pending:
                who.cancel(rng.choice(pending))
        elif op < 0.9:
            name = rng.choice(["prov-guangdong", "prov-beijing", "prov-sichuan"])
            who.drain(name)
            who.set_cordon(name, False)
        else:
            who.sync_from_store()
    leader.sync_from_store()
    api.sync_from_store()
    truth = ledger_truth(leader)
    assert truth, "the interleaving placed nothing: the test would prove nothing"
    assert ledger_of(leader) == truth
    assert ledger_of(api) == truth
    snap = leader.snapshot()
    assert np.all(snap.allocated <= snap.capacity + 1e-6)


def test_an_event_committed_out_of_id_order_is_not_missed(pair: tuple[Controller, Controller]) -> None:
    """Under PostgreSQL a transaction that took a lower event id can commit after one with a
    higher id; the follower asks again for ids it saw missing. (Under SQLite writers are
    serialised, so the same steps simply run in order.)"""
    leader, api = pair
    ready_everywhere(leader, api)
    a, _ = api.submit(job("a"))
    b, _ = api.submit(job("b"))
    leader.schedule_pending()
    leader.sync_from_store()
    if not api.store.is_sqlite:
        slow = api.store.engine.connect()
        tx = slow.begin()
        # The slow transaction takes its event id first ...
        slow.execute(
            insert(t.job_events).values(
                job_id=a.id,
                at=now(),
                type="Cancelled",
                from_phase="Scheduled",
                to_phase="Cancelled",
                cluster=None,
                attempt=1,
                reason="slow writer",
            )
        )
        slow.execute(t.jobs.update().where(t.jobs.c.id == a.id).values(phase="Cancelled"))
        api.cancel(b.id)  # ... a later id commits first
        leader.sync_from_store()
        assert b.id not in leader.registry.ledger and a.id in leader.registry.ledger
        assert leader.follower is not None and leader.follower.gaps
        tx.commit()
        slow.close()
    else:
        api.cancel(a.id)
        api.cancel(b.id)
    leader.sync_from_store()
    assert a.id not in leader.registry.ledger and b.id not in leader.registry.ledger


def test_sqlite_write_transactions_exclude_each_other_across_connections(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: a second process's write transaction waits before its first read, so
    a compare-and-set (read, then write) cannot interleave with another writer's."""
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    one, two = Store(url), Store(url)
    entered = threading.Event()

    def second() -> None:
        with two.tx() as conn:
            entered.set()
            conn.execute(t.policies.select()).all()

    with one.tx() as conn:
        conn.execute(t.policies.select()).all()
        th = threading.Thread(target=second)
        th.start()
        assert not entered.wait(0.5), "the second writer read inside the first one's transaction"
    th.join(10)
    assert entered.is_set()
    one.close()
    two.close()


START_ONE = """
import sys
from controller.service import Controller
from controller.settings import Settings
ctl = Controller(Settings(database_url=sys.argv[1], background=False, role=sys.argv[2], holder=sys.argv[3]))
print(len(ctl.registry.clusters), sorted(ctl.store.policy_versions().items()))
"""


def test_controllers_starting_together_on_a_new_database_all_come_up(db_url: str) -> None:
    """A Deployment's pods start at once against an empty database: migrations are serialised
    (advisory lock / BEGIN IMMEDIATE) and seeding tolerates a concurrent seeder, so every
    process starts and they agree on what was seeded."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", START_ONE, db_url, "api" if k % 2 else "all", f"p{k}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert len({out for out, _ in outs}) == 1  # same clusters, same policy versions everywhere
    clusters, versions = outs[0][0].split(" ", 1)
    assert clusters == "42"
    assert all(v == 1 for _, v in ast.literal_eval(versions))  # seeded once, never bumped by a racer


def test_sync_is_visible_in_metrics(pair: tuple[Controller, Controller]) -> None:
    """yiwang_store_sync_age_seconds (alerted on when a process stops following the database)
    and the count of job events read."""
    from prometheus_client import generate_latest

    from controller.metrics import make_registry

    leader, api = pair
    registry = make_registry(api)
    api.follower.last_sync -= 120  # type: ignore[union-attr]  # as if the last sync was 2 minutes ago
    stale = generate_latest(registry).decode()
    age = float(
        next(ln.split()[-1] for ln in stale.splitlines() if ln.startswith("yiwang_store_sync_age_seconds "))
    )
    assert age >= 120
    leader.submit(job("m"))
    api.sync_from_store()
    fresh = generate_latest(registry).decode()
    age = float(
        next(ln.split()[-1] for ln in fresh.splitlines() if ln.startswith("yiwang_store_sync_age_seconds "))
    )
    assert age < 60
    assert "yiwang_store_sync_events_total 1.0" in fresh


def test_a_sync_that_read_the_rows_before_a_heartbeat_keeps_that_heartbeat(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heartbeats update the registry without the controller's lock; a sync that read the
    cluster rows just before one committed must not put the older contact back (the demo saw
    40 of 42 clusters Ready right after every first heartbeat had been answered). A verdict
    another process wrote about the same contact (Unreachable) is still applied."""
    ctl = Controller(Settings(database_url=db_url, background=False, holder="leader"))
    try:
        name = "prov-guangdong"
        state = ctl.registry.clusters[name]
        assert state.health != Health.Ready and state.last_heartbeat is None
        stale = ctl.store.list_clusters()  # read by a sync before the heartbeat commits
        report = {"capacity": {"cpu": 64, "memory_gib": 256, "gpu": 0}}
        ctl.heartbeat(name, report)
        contact = state.last_heartbeat
        assert state.health == Health.Ready and contact is not None
        monkeypatch.setattr(ctl.store, "list_clusters", lambda: stale)
        ctl.sync_from_store()  # ... and applies those rows after it
        assert (state.health, state.last_heartbeat, state.reported) == (Health.Ready, contact, report)
        monkeypatch.undo()
        ctl.sync_from_store()  # the committed row: the same contact
        assert (state.health, state.last_heartbeat) == (Health.Ready, contact)
        with ctl.store.tx() as conn:  # another process's verdict about that contact
            ctl.store.set_cluster(conn, name, health=Health.Unreachable)
        ctl.sync_from_store()
        assert (state.health, state.last_heartbeat) == (Health.Unreachable, contact)
        ctl.heartbeat(name, report)  # a later contact makes it Ready again, through any sync
        ctl.sync_from_store()
        assert state.health == Health.Ready and state.last_heartbeat > contact
    finally:
        ctl.store.close()
